/**
 * Builds the history store named by `HISTORY_STORE` (default `STORE`). The
 * only place that knows every backend (how a store and a bus make a broker
 * is lib/broker/table.ts), and the one mapping from the
 * configuration to what this store reads ({@linkcode historyStoreSlice}).
 *
 * @module
 */
import type { Config } from "../../config.ts";
import { toError } from "../../errors.ts";
import { openStore, storeSliceOf } from "../_slice.ts";
import type { StoreContext, StoreSlice } from "../types.ts";
import { KvHistoryStore } from "./kv.ts";
import { MemoryHistoryStore } from "./memory.ts";
import { createRedisHistoryStore } from "./redis.ts";
import type { HistoryStore } from "./types.ts";

/** What the history store reads of the configuration. */
export interface HistoryStoreSlice extends StoreSlice {
  /** `HISTORY_MAX_BYTES`: what a memory store holds at most. */
  maxBytes: number;
}

/** The history store's slice of `config`. */
export function historyStoreSlice(
  config: Pick<Config, "history" | "store">,
): HistoryStoreSlice {
  return {
    ...storeSliceOf(config, config.history.store),
    maxBytes: config.history.maxBytes,
  };
}

/**
 * The configured history store.
 *
 * @example
 * ```ts ignore
 * const store = await createHistoryStore(historyStoreSlice(config), {});
 * ```
 */
export async function createHistoryStore(
  slice: HistoryStoreSlice,
  context: StoreContext,
): Promise<HistoryStore> {
  const { maxBytes } = slice;
  return await openStore<HistoryStore>(slice, context, {
    memory: (common) => new MemoryHistoryStore({ ...common, maxBytes }),
    redis: ({ clock: _clock, ...common }) => createRedisHistoryStore(common),
    kv: ({ onError, ...common }) =>
      new KvHistoryStore({
        ...common,
        ...(onError === undefined ? {} : { onError: (err) => onError(toError(err)) }),
      }),
  }, "HISTORY_STORE");
}
