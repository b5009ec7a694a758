/**
 * Builds the limits store named by `LIMITS_STORE`: Redis or KV (shared by
 * every node), or none (each isolate keeps its own limits, as without it).
 * The only place that knows every backend.
 *
 * @module
 */
import type { Config } from "../../config.ts";
import { leaseKvFor, redisOf, storeSliceOf } from "../_slice.ts";
import type { StoreContext } from "../types.ts";
import { KvLimitsStore } from "./kv.ts";
import { RedisLimitsStore } from "./redis.ts";
import type { LimitsStore } from "./types.ts";

/**
 * The configured limits store, or undefined without `LIMITS_STORE`. Redis
 * keys are prefixed with `BUS_CHANNEL`; KV is the `KV_PATH` database.
 *
 * @example
 * ```ts ignore
 * const store = await createLimitsStore(config, { clock });
 * ```
 */
export async function createLimitsStore(
  config: Pick<Config, "store" | "sharedLimits">,
  context: StoreContext,
): Promise<LimitsStore | undefined> {
  const { store: kind, ttlMs } = config.sharedLimits;
  if (kind === undefined) return undefined;
  const slice = storeSliceOf(config, kind);
  const common = {
    ttlMs,
    ...(context.clock === undefined ? {} : { clock: context.clock }),
    ...(context.onError === undefined ? {} : { onError: context.onError }),
  };
  if (kind === "redis") {
    const store = new RedisLimitsStore({ ...redisOf(slice, "LIMITS_STORE"), ...common });
    // Waits (2 s at most) for the first connection; never rejects for an unreachable Redis.
    await store.ready(2000);
    return store;
  }
  return new KvLimitsStore({ ...await leaseKvFor(slice), prefix: [slice.kv.prefix], ...common });
}
