/**
 * Builds the occupancy store named by `STORE`: this isolate's memory, or
 * Redis or KV (shared by every node). The only place that knows every
 * backend.
 *
 * @module
 */
import { openStore } from "../_slice.ts";
import type { StoreContext, StoreSlice } from "../types.ts";
import { KvOccupancyStore } from "./kv.ts";
import { MemoryOccupancyStore } from "./memory.ts";
import { RedisOccupancyStore } from "./redis.ts";
import type { OccupancyStore } from "./types.ts";

/**
 * The configured occupancy store: it reads only where shared state lives
 * (`storeSliceOf(config)`). Redis keys are prefixed with `BUS_CHANNEL`.
 *
 * @example
 * ```ts ignore
 * const store = await createOccupancyStore(storeSliceOf(config), {});
 * ```
 */
export async function createOccupancyStore(
  slice: StoreSlice,
  context: StoreContext,
): Promise<OccupancyStore> {
  return await openStore<OccupancyStore>(slice, context, {
    memory: () => new MemoryOccupancyStore(),
    redis: async (common) => {
      const store = new RedisOccupancyStore(common);
      // Waits (2 s at most) for the first connection; never rejects for an unreachable Redis.
      await store.ready(2000);
      return store;
    },
    kv: (common) => new KvOccupancyStore(common),
  });
}
