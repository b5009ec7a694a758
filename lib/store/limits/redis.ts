/**
 * Shared limits in Redis (`LIMITS_STORE=redis`): a token bucket per key, a
 * hash `{tokens, at}` (`<prefix>:limits:b:<key>`), and per counted key a hash
 * of each node's `count:expiresAt` (`<prefix>:limits:c:<key>`). Every
 * decision is one Lua script on one key (so it also holds on Redis Cluster),
 * with the node's clock as `now`; a hash left alone expires with its last
 * bucket refill or count lifetime.
 *
 * @module
 */
import { RedisStoreLink, Script } from "../_redis.ts";
import type { RedisTarget } from "../../redis_link.ts";
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import type { StoreHealth } from "../types.ts";
import type { BucketRule, Lease, LimitsStore } from "./types.ts";

/** Options for {@linkcode RedisLimitsStore}. */
export interface RedisLimitsStoreOptions {
  /** `redis://` or `rediss://` URL, credentials included (or the Sentinel target). */
  url: RedisTarget;
  /** Prefix of the keys. @default "realtime" */
  prefix?: string;
  /** A node's count lives this long after its last write. @default 30_000 */
  ttlMs?: number;
  /** Time allowed for one command. @default 500 */
  commandTimeoutMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** Called once when Redis becomes unreachable, not again until it is back. */
  onError?: (error: Error) => void;
}

/** How long a count hash outlives its fields' lifetime (their expiry is decided by `now`). */
const KEEP_MS = 60_000;

// KEYS: the bucket. ARGV: want, capacity, refill per ms, now. Returns {granted, waitMs}.
const TAKE = new Script(`
local want, cap, per, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local v = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens, at = tonumber(v[1]) or cap, tonumber(v[2]) or now
if now > at then tokens = math.min(cap, tokens + (now - at) * per); at = now end
local granted = math.max(0, math.min(want, math.floor(tokens)))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'a', string.format('%d', at))
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / per) + 1000)
local wait = 0
if granted < want then wait = math.max(1, math.ceil((1 - tokens) / per)) end
return {granted, wait}`);

// Reads the live counts of KEYS[1] (dropping expired ones): the total, and ARGV[1]'s own.
const LIVE = `
local total, mine = 0, 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local c, e = string.match(all[i + 1], '^(%d+):(%d+)$')
  if c == nil or tonumber(e) < now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    total = total + tonumber(c)
    if all[i] == ARGV[1] then mine = tonumber(c) end
  end
end`;

// KEYS: the counts. ARGV: node, limit, now, expiresAt, key lifetime. 1 when counted.
const ACQUIRE = new Script(`
local now = tonumber(ARGV[3])
${LIVE}
if total + 1 > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], (mine + 1) .. ':' .. ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`);

// KEYS: the counts. ARGV: node, now, expiresAt, key lifetime, count (absolute; "" for one fewer).
// Returns the live total.
const WRITE = new Script(`
local now = tonumber(ARGV[2])
${LIVE}
local count = tonumber(ARGV[5])
if count == nil then count = mine - 1 end
if count > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', count) .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  count = 0
end
return total - mine + count`);

/**
 * The shared {@linkcode LimitsStore} on Redis.
 *
 * @example
 * ```ts ignore
 * const store = new RedisLimitsStore({ url: "redis://127.0.0.1:6379" });
 * await store.take("m:alice", 5, { capacity: 50, refillPerSec: 10 }); // { granted: 5, waitMs: 0 }
 * ```
 */
export class RedisLimitsStore implements LimitsStore {
  readonly kind = "redis";
  readonly ttlMs: number;
  readonly #link: RedisStoreLink;
  readonly #prefix: string;
  readonly #clock: Clock;

  /** @param options URL, prefix, TTL and deadline; connecting starts at once */
  constructor(options: RedisLimitsStoreOptions) {
    const { url, prefix = "realtime", ttlMs = 30_000, commandTimeoutMs = 500 } = options;
    this.#link = new RedisStoreLink({
      url,
      name: "Redis limits store",
      store: "limits store",
      whileDown: "limits fall back to each isolate's own until it is back",
      waitForLink: true,
      commandTimeoutMs,
      onError: options.onError ?? (() => {}),
    });
    this.#prefix = `${prefix}:limits`;
    this.ttlMs = ttlMs;
    this.#clock = options.clock ?? systemClock;
  }

  /** Resolves true once connected, or false after `timeoutMs`. */
  ready(timeoutMs: number): Promise<boolean> {
    return this.#link.ready(timeoutMs);
  }

  async take(key: string, want: number, rule: BucketRule): Promise<Lease> {
    const args = [want, rule.capacity, rule.refillPerSec / 1000, this.#clock.now()].map(String);
    const reply = await this.#link.eval(TAKE, [`${this.#prefix}:b:${key}`], args);
    const [granted, waitMs] = Array.isArray(reply) ? reply.map(Number) : [0, 1000];
    return { granted: granted ?? 0, waitMs: waitMs ?? 1000 };
  }

  async acquire(key: string, node: string, limit: number): Promise<boolean> {
    const now = this.#clock.now();
    const args = [node, limit, now, now + this.ttlMs, this.ttlMs + KEEP_MS].map(String);
    return await this.#link.eval(ACQUIRE, [`${this.#prefix}:c:${key}`], args) === 1;
  }

  async release(key: string, node: string): Promise<void> {
    await this.#write(key, node, "");
  }

  async refresh(node: string, counts: ReadonlyMap<string, number>): Promise<void> {
    // One script per key (each on its own slot); sent together, they share round trips.
    await Promise.all([...counts].map(([key, count]) => this.#write(key, node, String(count))));
  }

  async count(key: string): Promise<number> {
    // Writing nothing for no node reads the live total.
    return Number(await this.#write(key, "", "0"));
  }

  health(): StoreHealth {
    return this.#link.health();
  }

  close(): Promise<void> {
    return this.#link.close();
  }

  #write(key: string, node: string, count: string): Promise<unknown> {
    const now = this.#clock.now();
    const args = [node, now, now + this.ttlMs, this.ttlMs + KEEP_MS, count].map(String);
    return this.#link.eval(WRITE, [`${this.#prefix}:c:${key}`], args);
  }
}
