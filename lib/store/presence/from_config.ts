/**
 * Builds the presence store named by `STORE`. The only place that knows
 * every backend, and the one mapping from the configuration to what this
 * store reads ({@linkcode presenceStoreSlice}).
 *
 * @module
 */
import type { Config } from "../../config.ts";
import { leaseKvFor, redisOf, storeSliceOf } from "../_slice.ts";
import type { StoreContext, StoreSlice } from "../types.ts";
import { KvPresenceStore } from "./kv.ts";
import { MemoryPresenceStore } from "./memory.ts";
import { createRedisPresenceStore } from "./redis.ts";
import type { PresenceStore } from "./types.ts";

/** What the presence store reads of the configuration. */
export interface PresenceStoreSlice extends StoreSlice {
  /** `PRESENCE_TTL_MS`: how long an entry or instance lives without a refresh. */
  ttlMs: number;
}

/** The presence store's slice of `config`. */
export function presenceStoreSlice(config: Pick<Config, "presence" | "store">): PresenceStoreSlice {
  return { ...storeSliceOf(config), ttlMs: config.presence.ttlMs };
}

/**
 * The configured presence store.
 *
 * @example
 * ```ts ignore
 * const store = await createPresenceStore(presenceStoreSlice(config), {});
 * ```
 */
export async function createPresenceStore(
  slice: PresenceStoreSlice,
  context: StoreContext,
): Promise<PresenceStore> {
  const { clock, onError } = context;
  const { ttlMs } = slice;
  switch (slice.kind) {
    case "memory":
      return new MemoryPresenceStore({ ttlMs, ...(clock === undefined ? {} : { clock }) });
    case "redis":
      return await createRedisPresenceStore({
        ...redisOf(slice, "STORE"),
        ttlMs,
        ...(onError === undefined ? {} : { onError }),
      });
    case "kv":
      return new KvPresenceStore({
        ...await leaseKvFor(slice),
        prefix: [slice.kv.prefix],
        ttlMs,
        ...(onError === undefined ? {} : { onError }),
        ...(clock === undefined ? {} : { clock }),
      });
  }
}
