/**
 * Builds the history store named by `HISTORY_STORE` (default `STORE`). The
 * only place that knows every backend.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import type { Config } from "../../config.ts";
import { leaseKv } from "../_kv.ts";
import { KvHistoryStore } from "./kv.ts";
import { MemoryHistoryStore } from "./memory.ts";
import { createRedisHistoryStore } from "./redis.ts";
import type { HistoryStore } from "./types.ts";
import { toError } from "../../errors.ts";

/** The parts of the {@linkcode Config} a history store reads. */
export interface HistoryStoreSettings {
  history: Pick<Config["history"], "store" | "maxBytes">;
  store: Pick<Config["store"], "redis" | "kv">;
  /** Whether the store publishes its appends itself depends on the bus. */
  bus: Pick<Config["bus"], "kind">;
}

/** Options for {@linkcode createHistoryStore}. */
export interface CreateHistoryStoreOptions {
  /** This instance's bus id: the origin of envelopes a store publishes itself. */
  instanceId: string;
  /** @default systemClock */
  clock?: Clock;
  /** Called when the backend becomes unreachable or recovers (logged by the caller). */
  onError?: (error: Error) => void;
}

/**
 * The configured history store.
 *
 * @example
 * ```ts ignore
 * const store = await createHistoryStore(config, { instanceId: bus.instanceId });
 * ```
 */
export function createHistoryStore(
  config: HistoryStoreSettings,
  options: CreateHistoryStoreOptions,
): Promise<HistoryStore> {
  const { clock, instanceId, onError } = options;
  switch (config.history.store) {
    case "memory":
      return Promise.resolve(
        new MemoryHistoryStore({
          maxBytes: config.history.maxBytes,
          ...(clock === undefined ? {} : { clock }),
        }),
      );
    case "redis": {
      const redis = config.store.redis;
      if (redis === undefined) {
        return Promise.reject(new TypeError("HISTORY_STORE=redis needs REDIS_URL"));
      }
      return createRedisHistoryStore({
        url: redis.url,
        prefix: redis.prefix,
        // With the Redis bus the store's script publishes each message itself,
        // on the bus's own channel, so one order reaches every instance.
        ...(config.bus.kind === "redis" ? { publish: { instanceId } } : {}),
        ...(onError === undefined ? {} : { onError }),
      });
    }
    case "kv":
      return openKvHistoryStore(config, options);
  }
}

async function openKvHistoryStore(
  config: HistoryStoreSettings,
  options: CreateHistoryStoreOptions,
): Promise<HistoryStore> {
  const { clock, onError } = options;
  const lease = await leaseKv(config.store.kv.path);
  return new KvHistoryStore({
    kv: lease.kv,
    prefix: [config.store.kv.prefix],
    // With BUS=kv the append is the publication: other isolates' head watches see it.
    publishes: config.bus.kind === "kv",
    onClose: () => lease.release(),
    ...(onError === undefined ? {} : { onError: (err) => onError(toError(err)) }),
    ...(clock === undefined ? {} : { clock }),
  });
}
