/**
 * Builds the presence store named by `STORE`. The only place that knows every
 * backend.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import type { Config } from "../../config.ts";
import { leaseKv } from "../_kv.ts";
import { KvPresenceStore } from "./kv.ts";
import { MemoryPresenceStore } from "./memory.ts";
import { createRedisPresenceStore } from "./redis.ts";
import type { PresenceStore } from "./types.ts";

/** Options for {@linkcode createPresenceStore}. */
export interface CreatePresenceStoreOptions {
  /** @default systemClock */
  clock?: Clock;
  /** Called when the backend becomes unreachable (logged by the caller). */
  onError?: (error: Error) => void;
}

/**
 * The configured presence store.
 *
 * @example
 * ```ts ignore
 * const store = await createPresenceStore(config, {});
 * ```
 */
export function createPresenceStore(
  config: Pick<Config, "presence" | "store">,
  options: CreatePresenceStoreOptions = {},
): Promise<PresenceStore> {
  const { clock, onError } = options;
  const ttlMs = config.presence.ttlMs;
  switch (config.store.kind) {
    case "memory":
      return Promise.resolve(
        new MemoryPresenceStore({ ttlMs, ...(clock === undefined ? {} : { clock }) }),
      );
    case "redis":
      return createRedisPresenceStore({
        url: config.store.redis!.url,
        prefix: config.store.redis!.prefix,
        ttlMs,
        ...(onError === undefined ? {} : { onError }),
      });
    case "kv":
      return leaseKv(config.store.kv.path).then((lease) =>
        new KvPresenceStore({
          kv: lease.kv,
          prefix: [config.store.kv.prefix],
          ttlMs,
          onClose: () => lease.release(),
          ...(onError === undefined ? {} : { onError }),
          ...(clock === undefined ? {} : { clock }),
        })
      );
  }
}
