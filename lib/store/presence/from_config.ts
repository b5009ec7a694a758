/**
 * Builds the presence store named by `STORE`. The only place that knows
 * every backend, and the one mapping from the configuration to what this
 * store reads ({@linkcode presenceStoreSlice}).
 *
 * @module
 */
import type { Config } from "../../config.ts";
import { openStore, storeSliceOf } from "../_slice.ts";
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
  const { ttlMs } = slice;
  return await openStore<PresenceStore>(slice, context, {
    memory: (common) => new MemoryPresenceStore({ ...common, ttlMs }),
    redis: ({ clock: _clock, ...common }) => createRedisPresenceStore({ ...common, ttlMs }),
    kv: (common) => new KvPresenceStore({ ...common, ttlMs }),
  });
}
