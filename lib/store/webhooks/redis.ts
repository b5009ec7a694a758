/**
 * The webhook queue in Redis (`STORE=redis`), shared by every node and kept
 * across restarts (as far as Redis persists). Per sink, three keys under
 * `<prefix>:webhooks:<sink>`: a hash of entries by id (`:e`), a sorted set
 * of when each may be claimed (`:due`, the lease of a claim is a later
 * score), and a sorted set of when each was queued (`:order`, for dropping
 * the oldest). Every operation is one Lua script, so two nodes never claim
 * the same entry and a full queue drops exactly its oldest. On a Redis
 * Cluster `<prefix>:webhooks:<sink>` is written `{…}`: a sink's keys share a slot.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import { RedisStoreLink, Script } from "../_redis.ts";
import type { RedisTarget } from "../../redis_link.ts";
import type { StoreHealth } from "../types.ts";
import { checkMaxEntries, parseQueuedEntry, type QueuedEntry, type WebhookQueue } from "./types.ts";

/** Options for {@linkcode RedisWebhookQueue}. */
export interface RedisWebhookQueueOptions {
  /** `redis://` or `rediss://` URL, credentials included. */
  url: RedisTarget;
  /** Prefix of the keys, so several apps can share one Redis. @default "realtime" */
  prefix?: string;
  /** Most entries one sink holds. @default 100_000 */
  maxEntries?: number;
  /** Time of dues and leases (passed to the scripts, not Redis's own clock). @default systemClock */
  clock?: Clock;
  /** Time allowed for one command. @default 2000 */
  commandTimeoutMs?: number;
  /** Longest wait between reconnect attempts. @default 2000 */
  maxReconnectDelayMs?: number;
  /** Called once when Redis becomes unreachable, not again until it is back. */
  onError?: (error: Error) => void;
}

/** Entries per push script, so one script never runs long. */
const PUSH_CHUNK = 500;

// KEYS: e, due, order. ARGV: now, max, then (id, json, queuedAt) triples.
// Returns the ids of the entries dropped to stay within max, oldest first.
const PUSH = new Script(`
for i = 3, #ARGV, 3 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
  redis.call('ZADD', KEYS[3], ARGV[i + 2], ARGV[i])
end
local dropped = {}
local over = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[2])
if over > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[3], over)
  for j = 1, #oldest, 2 do
    table.insert(dropped, oldest[j])
    redis.call('HDEL', KEYS[1], oldest[j])
    redis.call('ZREM', KEYS[2], oldest[j])
  end
end
return dropped`);
// KEYS: e, due. ARGV: now, max, lease end. Leases and returns due entries, oldest due first.
const CLAIM = new Script(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then return {} end
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[2], ARGV[3], id) end
return redis.call('HMGET', KEYS[1], unpack(ids))`);
// KEYS: e, due, order. ARGV: ids.
const ACK = new Script(`
for _, id in ipairs(ARGV) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
return 1`);
// KEYS: e, due. ARGV: due at, then (id, json) pairs; entries gone meanwhile stay gone.
const RETRY = new Script(`
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
  end
end
return 1`);

/**
 * The shared {@linkcode WebhookQueue} on Redis. Prefer
 * {@linkcode createRedisWebhookQueue}, which waits for the first connection.
 *
 * @example
 * ```ts ignore
 * const queue = await createRedisWebhookQueue({ url: "redis://127.0.0.1:6379" });
 * await queue.push("native:abc", [{ id, queuedAt: Date.now(), attempts: 0, event: "{}" }]);
 * await queue.close();
 * ```
 */
export class RedisWebhookQueue implements WebhookQueue {
  readonly kind = "redis";
  readonly durable = true;
  readonly maxEntries: number;
  readonly #link: RedisStoreLink;
  readonly #prefix: string;
  readonly #clock: Clock;

  /** @param options URL, naming, bound, clock and deadlines; connecting starts at once */
  constructor(options: RedisWebhookQueueOptions) {
    const {
      url,
      prefix = "realtime",
      maxEntries = 100_000,
      clock = systemClock,
      commandTimeoutMs = 2000,
      maxReconnectDelayMs = 2000,
      onError = () => {},
    } = options;
    checkMaxEntries(maxEntries);
    this.#link = new RedisStoreLink({
      url,
      name: "Redis webhook queue",
      store: "webhook queue",
      whileDown: "webhook events wait in memory (bounded) until it is back",
      // Background work: waiting one command timeout for a reconnect beats failing.
      waitForLink: true,
      commandTimeoutMs,
      maxReconnectDelayMs,
      onError,
    });
    this.maxEntries = maxEntries;
    this.#prefix = `${prefix}:webhooks`;
    this.#clock = clock;
  }

  /** Resolves true once connected, or false after `timeoutMs`; it keeps trying either way. */
  ready(timeoutMs: number): Promise<boolean> {
    return this.#link.ready(timeoutMs);
  }

  async push(sink: string, entries: readonly QueuedEntry[]): Promise<string[]> {
    const dropped: string[] = [];
    const now = String(this.#clock.now());
    for (let i = 0; i < entries.length; i += PUSH_CHUNK) {
      const args = [now, String(this.maxEntries)];
      for (const entry of entries.slice(i, i + PUSH_CHUNK)) {
        args.push(entry.id, JSON.stringify(entry), String(entry.queuedAt));
      }
      const reply = await this.#link.eval(PUSH, this.#keys(sink, 3), args);
      if (Array.isArray(reply)) dropped.push(...reply.map(String));
    }
    return dropped;
  }

  async claim(sink: string, max: number, leaseMs: number): Promise<QueuedEntry[]> {
    const now = this.#clock.now();
    const reply = await this.#link.eval(CLAIM, this.#keys(sink, 2), [
      String(now),
      String(max),
      String(now + leaseMs),
    ]);
    return parseAll(reply);
  }

  async ack(sink: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#link.eval(ACK, this.#keys(sink, 3), [...ids]);
  }

  async retry(sink: string, entries: readonly QueuedEntry[], dueAt: number): Promise<void> {
    if (entries.length === 0) return;
    const args = [String(dueAt)];
    for (const entry of entries) args.push(entry.id, JSON.stringify(entry));
    await this.#link.eval(RETRY, this.#keys(sink, 2), args);
  }

  async depth(sink: string): Promise<number> {
    return Number(await this.#link.command(["HLEN", this.#keys(sink, 2)[0]!]));
  }

  health(): StoreHealth {
    return this.#link.health();
  }

  close(): Promise<void> {
    return this.#link.close();
  }

  #keys(sink: string, count: 2 | 3): string[] {
    // On a Cluster a sink's keys share its hash tag: sinks spread over the shards.
    const base = this.#link.tag(`${this.#prefix}:${sink}`);
    return [`${base}:e`, `${base}:due`, `${base}:order`].slice(0, count);
  }
}

/** The entries of a script's reply; values not written by us are skipped. */
function parseAll(reply: unknown): QueuedEntry[] {
  const out: QueuedEntry[] = [];
  for (const value of Array.isArray(reply) ? reply : []) {
    if (value === null || value === undefined) continue;
    const entry = parseQueuedEntry(String(value));
    if (entry !== undefined) out.push(entry);
  }
  return out;
}

/**
 * Creates a {@linkcode RedisWebhookQueue} and waits up to `startTimeoutMs`
 * for its first connection; never rejects for an unreachable Redis.
 */
export async function createRedisWebhookQueue(
  options: RedisWebhookQueueOptions & { startTimeoutMs?: number },
): Promise<RedisWebhookQueue> {
  const { startTimeoutMs = 2000, ...rest } = options;
  const queue = new RedisWebhookQueue(rest);
  await queue.ready(startTimeoutMs);
  return queue;
}
