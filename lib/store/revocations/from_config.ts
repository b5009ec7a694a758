/**
 * Builds the revocation store named by `STORE`. The only place that knows
 * every backend, and the one mapping from the configuration to what this
 * store reads ({@linkcode revocationStoreSlice}).
 *
 * @module
 */
import type { Config } from "../../config.ts";
import { openStore, storeSliceOf } from "../_slice.ts";
import type { StoreContext, StoreSlice } from "../types.ts";
import { KvRevocationStore } from "./kv.ts";
import { MemoryRevocationStore } from "./memory.ts";
import { createRedisRevocationStore } from "./redis.ts";
import type { RevocationStore } from "./types.ts";

/** What the revocation store reads of the configuration: only where it lives. */
export type RevocationStoreSlice = StoreSlice;

/** The revocation store's slice of `config`. */
export function revocationStoreSlice(config: Pick<Config, "store">): RevocationStoreSlice {
  return storeSliceOf(config);
}

/**
 * The configured revocation store. Redis keys are prefixed with
 * `BUS_CHANNEL`, as the bus's channels are.
 *
 * @example
 * ```ts ignore
 * const store = await createRevocationStore(revocationStoreSlice(config), {});
 * ```
 */
export async function createRevocationStore(
  slice: RevocationStoreSlice,
  context: StoreContext,
): Promise<RevocationStore> {
  return await openStore<RevocationStore>(slice, context, {
    memory: (common) => new MemoryRevocationStore(common),
    // Waits (2 s at most) for the first connection; never rejects for an unreachable Redis.
    redis: (common) => createRedisRevocationStore(common),
    kv: (common) => new KvRevocationStore(common),
  });
}
