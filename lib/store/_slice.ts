/**
 * The one mapping from the configuration's `store` section to the
 * {@linkcode StoreSlice} every store factory reads, and the KV lease a KV
 * store is built on. Each concern's `from_config.ts` adds its own fields to
 * this slice.
 *
 * @module
 */
import type { Config, RedisTarget } from "../config.ts";
import { type KvHandleOptions, leaseKv } from "./_kv.ts";
import type { BackendKind, StoreSlice } from "./types.ts";

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
