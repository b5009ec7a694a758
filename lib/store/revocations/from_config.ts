/**
 * Picks the revocation store for the configuration: Redis when the
 * instances share one (`BUS=redis`), else this process's memory.
 *
 * @module
 */
import type { Config } from "../../config.ts";
import { MemoryRevocationStore } from "./memory.ts";
import { RedisRevocationStore } from "./redis.ts";
import type { RevocationStore } from "./types.ts";

/** Builds the configured revocation store; nothing connects until first use. */
export function createRevocationStore(config: Config): RevocationStore {
  if (config.bus.kind === "redis" && config.bus.redisUrl !== undefined) {
    return new RedisRevocationStore({ url: config.bus.redisUrl, prefix: config.bus.channel });
  }
  return new MemoryRevocationStore();
}
