/**
 * Occupancy in Redis (`STORE=redis`), shared by every node: per key a set of
 * its holders (`<prefix>:occupancy:k:<key>`), per node a set of what it holds
 * (`<prefix>:occupancy:n:<node>`), and the set of nodes holding something
 * (`<prefix>:occupancy:nodes`), and the keys held by anyone, a sorted set
 * read by prefix (`<prefix>:occupancy:keys`). Each operation is one Lua script, so "first"
 * and "last" are decided once, and a dead node's keys are popped by one
 * reaper each. On a Redis Cluster `<prefix>:occupancy` is written
 * `{<prefix>:occupancy}`: every key in one slot, so that no script crosses
 * slots (occupancy changes only on a channel's first and last member).
 *
 * @module
 */
import { RedisStoreLink, Script } from "../_redis.ts";
import type { RedisTarget } from "../../redis_link.ts";
import type { StoreHealth } from "../types.ts";
import type { OccupancyStore } from "./types.ts";

/** Options for {@linkcode RedisOccupancyStore}. */
export interface RedisOccupancyStoreOptions {
  /** `redis://` or `rediss://` URL, credentials included. */
  url: RedisTarget;
  /** Prefix of the keys. @default "realtime" */
  prefix?: string;
  /** Time allowed for one command. @default 2000 */
  commandTimeoutMs?: number;
  /** Called once when Redis becomes unreachable, not again until it is back. */
  onError?: (error: Error) => void;
}

/** Keys a reap pops per script, so one script never runs long. */
const REAP_CHUNK = 500;

// KEYS: the key's holders, the node's keys, the nodes, the held keys. ARGV: key, node.
// 1 when first anywhere.
const HOLD = new Script(`
if redis.call('SADD', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
if redis.call('SCARD', KEYS[1]) == 1 then
  redis.call('ZADD', KEYS[4], 0, ARGV[1])
  return 1
end
return 0`);
// Same KEYS and ARGV. 1 when the node held it and nobody does now.
const RELEASE = new Script(`
if redis.call('SREM', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('SCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[2]) end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return 1
end
return 0`);
// KEYS: the node's keys, the nodes, the held keys. ARGV: node, holders-key prefix, chunk.
// Returns {done (0/1), emptied keys...}.
const REAP = new Script(`
local keys = redis.call('SPOP', KEYS[1], tonumber(ARGV[3]))
local out = {0}
for _, key in ipairs(keys) do
  local holders = ARGV[2] .. key
  if redis.call('SREM', holders, ARGV[1]) == 1 and redis.call('EXISTS', holders) == 0 then
    redis.call('ZREM', KEYS[3], key)
    table.insert(out, key)
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  out[1] = 1
end
return out`);

/**
 * The shared {@linkcode OccupancyStore} on Redis.
 *
 * @example
 * ```ts ignore
 * const store = new RedisOccupancyStore({ url: "redis://127.0.0.1:6379" });
 * await store.hold("room:lobby", "node-a"); // true: first anywhere
 * ```
 */
export class RedisOccupancyStore implements OccupancyStore {
  readonly kind = "redis";
  readonly shared = true;
  readonly #link: RedisStoreLink;
  readonly #prefix: string;

  /** @param options URL, prefix and deadline; connecting starts at once */
  constructor(options: RedisOccupancyStoreOptions) {
    const { url, prefix = "realtime", commandTimeoutMs = 2000, onError = () => {} } = options;
    this.#link = new RedisStoreLink({
      url,
      name: "Redis occupancy store",
      store: "occupancy store",
      whileDown: "occupancy webhooks wait until it is back",
      waitForLink: true,
      commandTimeoutMs,
      onError,
    });
    // On a Cluster every occupancy key shares one hash tag (one slot): the
    // scripts decide "first" and "last" across the key, node and index sets.
    this.#prefix = this.#link.tag(`${prefix}:occupancy`);
  }

  /** Resolves true once connected, or false after `timeoutMs`. */
  ready(timeoutMs: number): Promise<boolean> {
    return this.#link.ready(timeoutMs);
  }

  async hold(key: string, node: string): Promise<boolean> {
    return await this.#link.eval(HOLD, this.#keys(key, node), [key, node]) === 1;
  }

  async release(key: string, node: string): Promise<boolean> {
    return await this.#link.eval(RELEASE, this.#keys(key, node), [key, node]) === 1;
  }

  async list(prefix: string, limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    // From the prefix on, in byte order: the matching keys come first, then the rest.
    const reply = await this.#link.command([
      "ZRANGEBYLEX",
      `${this.#prefix}:keys`,
      `[${prefix}`,
      "+",
      "LIMIT",
      "0",
      String(limit),
    ]);
    const keys = Array.isArray(reply) ? reply.map(String) : [];
    return keys.filter((key) => key.startsWith(prefix));
  }

  async nodes(): Promise<string[]> {
    const reply = await this.#link.command(["SMEMBERS", `${this.#prefix}:nodes`]);
    return Array.isArray(reply) ? reply.map(String) : [];
  }

  async reap(node: string): Promise<{ emptied: string[]; done: boolean }> {
    const reply = await this.#link.eval(
      REAP,
      [`${this.#prefix}:n:${node}`, `${this.#prefix}:nodes`, `${this.#prefix}:keys`],
      [node, `${this.#prefix}:k:`, String(REAP_CHUNK)],
    );
    const [done, ...emptied] = Array.isArray(reply) ? reply : [1];
    return { emptied: emptied.map(String), done: Number(done) === 1 };
  }

  health(): StoreHealth {
    return this.#link.health();
  }

  close(): Promise<void> {
    return this.#link.close();
  }

  #keys(key: string, node: string): string[] {
    const p = this.#prefix;
    return [`${p}:k:${key}`, `${p}:n:${node}`, `${p}:nodes`, `${p}:keys`];
  }
}
