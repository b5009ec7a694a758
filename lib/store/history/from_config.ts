/**
 * Builds the history store named by `HISTORY_STORE` (default `STORE`). The
 * only place that knows every backend, and the one mapping from the
 * configuration to what this store reads ({@linkcode historyStoreSlice}).
 *
 * @module
 */
import type { Config } from "../../config.ts";
import { toError } from "../../errors.ts";
import { leaseKvFor, redisOf, storeSliceOf } from "../_slice.ts";
import type { StoreContext, StoreSlice } from "../types.ts";
import { KvHistoryStore } from "./kv.ts";
import { MemoryHistoryStore } from "./memory.ts";
import { createRedisHistoryStore } from "./redis.ts";
import type { HistoryStore } from "./types.ts";

/** What the history store reads of the configuration. */
export interface HistoryStoreSlice extends StoreSlice {
  /** `HISTORY_MAX_BYTES`: what a memory store holds at most. */
  maxBytes: number;
  /**
   * `BUS`: with `redis`, the Redis store's script publishes each message on
   * the bus's channel; with `kv`, the KV store's append is the publication.
   */
  bus: Config["bus"]["kind"];
}

/** What {@linkcode createHistoryStore} is given besides its slice. */
export interface HistoryStoreContext extends StoreContext {
  /** This instance's bus id: the origin of envelopes a store publishes itself. */
  instanceId: string;
}

/** The history store's slice of `config`. */
export function historyStoreSlice(
  config: Pick<Config, "history" | "store" | "bus">,
): HistoryStoreSlice {
  return {
    ...storeSliceOf(config, config.history.store),
    maxBytes: config.history.maxBytes,
    bus: config.bus.kind,
  };
}

/**
 * The configured history store.
 *
 * @example
 * ```ts ignore
 * const store = await createHistoryStore(historyStoreSlice(config), { instanceId: bus.instanceId });
 * ```
 */
export async function createHistoryStore(
  slice: HistoryStoreSlice,
  context: HistoryStoreContext,
): Promise<HistoryStore> {
  const { clock, instanceId, onError } = context;
  switch (slice.kind) {
    case "memory":
      return new MemoryHistoryStore({
        maxBytes: slice.maxBytes,
        ...(clock === undefined ? {} : { clock }),
      });
    case "redis":
      return await createRedisHistoryStore({
        ...redisOf(slice, "HISTORY_STORE"),
        // With the Redis bus the store's script publishes each message itself,
        // on the bus's own channel, so one order reaches every instance.
        ...(slice.bus === "redis" ? { publish: { instanceId } } : {}),
        ...(onError === undefined ? {} : { onError }),
      });
    case "kv":
      return new KvHistoryStore({
        ...await leaseKvFor(slice),
        prefix: [slice.kv.prefix],
        // With BUS=kv the append is the publication: other isolates' head watches see it.
        publishes: slice.bus === "kv",
        ...(onError === undefined ? {} : { onError: (err) => onError(toError(err)) }),
        ...(clock === undefined ? {} : { clock }),
      });
  }
}
