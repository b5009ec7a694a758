/**
 * Builds the occupancy store named by `STORE`: this isolate's memory, or
 * Redis or KV (shared by every node). The only place that knows every
 * backend.
 *
 * @module
 */
import type { Config } from "../../config.ts";
import { leaseKvFor, redisOf, storeSliceOf } from "../_slice.ts";
import type { StoreContext, StoreSlice } from "../types.ts";
import { KvOccupancyStore } from "./kv.ts";
import { MemoryOccupancyStore } from "./memory.ts";
import { RedisOccupancyStore } from "./redis.ts";
import type { OccupancyStore } from "./types.ts";

/** What the occupancy store reads of the configuration: only where it lives. */
export type OccupancyStoreSlice = StoreSlice;

/** The occupancy store's slice of `config`. */
export function occupancyStoreSlice(config: Pick<Config, "store">): OccupancyStoreSlice {
  return storeSliceOf(config);
}

/**
 * The configured occupancy store. Redis keys are prefixed with `BUS_CHANNEL`.
 *
 * @example
 * ```ts ignore
 * const store = await createOccupancyStore(occupancyStoreSlice(config), {});
 * ```
 */
export async function createOccupancyStore(
  slice: OccupancyStoreSlice,
  context: StoreContext,
): Promise<OccupancyStore> {
  const errors = context.onError === undefined ? {} : { onError: context.onError };
  switch (slice.kind) {
    case "memory":
      return new MemoryOccupancyStore();
    case "redis": {
      const store = new RedisOccupancyStore({ ...redisOf(slice, "STORE"), ...errors });
      // Waits (2 s at most) for the first connection; never rejects for an unreachable Redis.
      await store.ready(2000);
      return store;
    }
    case "kv":
      return new KvOccupancyStore({
        ...await leaseKvFor(slice),
        prefix: [slice.kv.prefix],
        ...errors,
      });
  }
}
