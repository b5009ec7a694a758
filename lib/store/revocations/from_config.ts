/**
 * Builds the revocation store named by `STORE`. The only place that knows
 * every backend.
 *
 * @module
 */
import type { Config } from "../../config.ts";
import { leaseKv } from "../_kv.ts";
import { KvRevocationStore } from "./kv.ts";
import { MemoryRevocationStore } from "./memory.ts";
import { RedisRevocationStore } from "./redis.ts";
import type { RevocationStore } from "./types.ts";

/**
 * The configured revocation store; nothing connects until first use. Redis
 * keys are prefixed with `BUS_CHANNEL`, as the bus's channels are.
 *
 * @throws {TypeError} for a backend this build does not have
 */
export function createRevocationStore(config: Pick<Config, "store">): RevocationStore {
  switch (config.store.kind) {
    case "memory":
      return new MemoryRevocationStore();
    case "redis":
      // REDIS_URL is required by the config whenever STORE=redis.
      return new RedisRevocationStore({
        url: config.store.redis!.url,
        prefix: config.store.redis!.prefix,
      });
    case "kv": {
      // Opened lazily, like Redis: the handle is leased on first use by the store's promise.
      const lease = leaseKv(config.store.kv.path);
      return new KvRevocationStore({
        kv: lease.then((l) => l.kv),
        prefix: [config.store.kv.prefix],
        onClose: () => void lease.then((l) => l.release(), () => {}),
      });
    }
  }
}
