/**
 * The one mapping from the configuration's `store` section to the
 * {@linkcode StoreSlice} every store factory reads, and the KV lease a KV
 * store is built on. Each concern's `from_config.ts` adds its own fields to
 * this slice.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { Config, RedisTarget } from "../config.ts";
import { type KvHandleOptions, leaseKv } from "./_kv.ts";
import type { BackendKind, StoreContext, StoreSlice } from "./types.ts";

/** Where shared state lives (`store`), for the backend `kind` (default `STORE`). */
export function storeSliceOf(
  config: Pick<Config, "store">,
  kind: BackendKind = config.store.kind,
): StoreSlice {
  const { redis, kv } = config.store;
  return { kind, redis, kv };
}

/**
 * The database of `slice`, leased now (this isolate's one handle per path)
 * and released when the store closes: the `kv` and `onClose` a KV store's
 * {@linkcode KvHandleOptions} take.
 */
export async function leaseKvFor(
  slice: StoreSlice,
): Promise<Required<Pick<KvHandleOptions, "kv" | "onClose">>> {
  const lease = await leaseKv(slice.kv.path);
  return { kv: lease.kv, onClose: () => lease.release() };
}

/** The Redis server of `slice`, or a `TypeError` saying that `variable=redis` needs one. */
export function redisOf(
  slice: StoreSlice,
  variable: string,
): { url: RedisTarget; prefix: string } {
  if (slice.redis === undefined) {
    throw new TypeError(`${variable}=redis needs REDIS_URL or REDIS_SENTINELS`);
  }
  return slice.redis;
}

/** What every memory backend is given: the context's clock, if any. */
export interface MemoryCommon {
  /** Time for expiry. */
  clock?: Clock;
}

/** What every Redis backend is given: the server, the key prefix and the context. */
export interface RedisCommon extends MemoryCommon {
  /** The Redis server (URL or sentinels). */
  url: RedisTarget;
  /** Prefix of every key (`BUS_CHANNEL`). */
  prefix: string;
  /** Told when Redis becomes unreachable. */
  onError?: (error: Error) => void;
}

/** What every KV backend is given: the leased database, the key prefix and the context. */
export interface KvCommon extends MemoryCommon, Required<Pick<KvHandleOptions, "kv" | "onClose">> {
  /** First part of every key (`KV_PREFIX`). */
  prefix: [string];
  /** Told when the database becomes unreachable. */
  onError?: (error: Error) => void;
}

/** How one concern builds each of its backends from the options they all share. */
export interface StoreBuilders<S> {
  /** This isolate's own store. */
  memory(common: MemoryCommon): S;
  /** The Redis store; may wait (boundedly) for its first connection. */
  redis(common: RedisCommon): S | Promise<S>;
  /** The KV store. */
  kv(common: KvCommon): S;
}

/**
 * The store `slice` names, built by the matching one of `builders` from what
 * every backend shares: the context's clock and error sink, Redis's server
 * and prefix, the leased KV database and its prefix. The one `switch` over
 * backends that each concern's `from_config.ts` would otherwise repeat.
 *
 * @param variable the setting named when Redis is chosen without a server
 * @example
 * ```ts ignore
 * const queue = await openStore(slice, context, {
 *   memory: (common) => new MemoryWebhookQueue({ ...common, maxEntries }),
 *   redis: (common) => createRedisWebhookQueue({ ...common, maxEntries }),
 *   kv: (common) => new KvWebhookQueue({ ...common, maxEntries }),
 * });
 * ```
 */
export async function openStore<S>(
  slice: StoreSlice,
  context: StoreContext,
  builders: StoreBuilders<S>,
  variable = "STORE",
): Promise<S> {
  const { clock, onError } = context;
  const time: MemoryCommon = clock === undefined ? {} : { clock };
  const errors = onError === undefined ? {} : { onError };
  switch (slice.kind) {
    case "memory":
      return builders.memory(time);
    case "redis":
      return await builders.redis({ ...redisOf(slice, variable), ...time, ...errors });
    case "kv":
      return builders.kv({
        ...await leaseKvFor(slice),
        prefix: [slice.kv.prefix],
        ...time,
        ...errors,
      });
  }
}
