/**
 * Revocations in Redis, shared by every node: a hash of entries
 * (`<prefix>:revocations`, field `<kind>:<subject>`, value the JSON entry)
 * and a sorted set of their expiry times (`<prefix>:revocations:until`), so
 * that expired entries are dropped atomically by the scripts that add and
 * list, and never by a node that raced a newer `add`.
 *
 * The connection is supervised by `RedisLink` (replaced after any fault,
 * with a bounded back-off); every command has a deadline, and one sent while
 * the link is down first waits one command timeout for it. While Redis is
 * unreachable, calls reject with `StoreUnavailableError` and `health()` says
 * so.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { RedisStoreLink, type RedisStoreOptions, Script, startRedisStore } from "../_redis.ts";
import type { StoreHealth } from "../types.ts";
import { revocationSettings, type RevocationStoreOptions } from "./_settings.ts";
import type { Revocation, RevocationKind, RevocationStore } from "./types.ts";
import { revocationKey, RevocationSchema } from "./types.ts";

/** Options for {@linkcode RedisRevocationStore}. */
export interface RedisRevocationStoreOptions extends RevocationStoreOptions, RedisStoreOptions {
  /** Time allowed to open a connection. @default {2000} */
  connectTimeoutMs?: number;
}

// KEYS: hash, zset. ARGV: now. Drops expired entries; used by every script.
const PRUNE = `
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, field in ipairs(expired) do redis.call('HDEL', KEYS[1], field) end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1]) end
`;
// ARGV: now, field, value, until, max. Stores; when full, first drops the
// entry that lapses soonest and returns its value (1 when none was dropped).
const ADD = new Script(`${PRUNE}
local evicted = 1
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then
  local soonest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if soonest then
    evicted = redis.call('HGET', KEYS[1], soonest) or 1
    redis.call('HDEL', KEYS[1], soonest)
    redis.call('ZREM', KEYS[2], soonest)
  end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
return evicted`);
// ARGV: now, field. Returns 1 when an active entry was removed.
const REMOVE = new Script(`${PRUNE}
redis.call('ZREM', KEYS[2], ARGV[2])
return redis.call('HDEL', KEYS[1], ARGV[2])`);
// ARGV: now. Returns the values of every active entry.
const LIST = new Script(`${PRUNE}
return redis.call('HVALS', KEYS[1])`);

/**
 * The shared {@linkcode RevocationStore} on Redis. Prefer
 * {@linkcode createRedisRevocationStore}, which waits for the first
 * connection.
 *
 * @example
 * ```ts ignore
 * import { createRedisRevocationStore } from "./redis.ts";
 * const store = await createRedisRevocationStore({ url: "redis://127.0.0.1:6379" });
 * console.log(await store.list());
 * await store.close();
 * ```
 */
export class RedisRevocationStore implements RevocationStore {
  readonly kind = "redis";
  readonly shared = true;
  readonly #link: RedisStoreLink;
  readonly #hash: string;
  readonly #zset: string;
  readonly #max: number;
  readonly #clock: Clock;

  /** @param options URL, naming, bound, clock and deadlines; connecting starts at once */
  constructor(options: RedisRevocationStoreOptions) {
    const { prefix = "realtime", connectTimeoutMs = 2000 } = options;
    // The clock's time is passed to the scripts: expiry is by our clock, not Redis's.
    const { maxEntries, clock } = revocationSettings(options);
    this.#link = new RedisStoreLink({
      ...options,
      connectTimeoutMs,
      name: "Redis revocation store",
      store: "revocation store",
      whileDown: "revocations cannot be changed or re-read until it is back",
      // An operator's revoke should not fail for a reconnect under way.
      waitForLink: true,
    });
    // On a Cluster both keys share one hash tag, so every script stays in one slot.
    this.#hash = this.#link.tag(`${prefix}:revocations`);
    this.#zset = `${this.#hash}:until`;
    this.#max = maxEntries;
    this.#clock = clock;
  }

  /** Resolves true once connected, or false after `timeoutMs`; it keeps trying either way. */
  ready(timeoutMs: number): Promise<boolean> {
    return this.#link.ready(timeoutMs);
  }

  async add(revocation: Revocation): Promise<Revocation | undefined> {
    const field = revocationKey(revocation.kind, revocation.subject);
    const reply = await this.#script(ADD, [
      field,
      JSON.stringify(revocation),
      String(revocation.until),
      String(this.#max),
    ]);
    return typeof reply === "string" ? parseRevocation(reply) : undefined;
  }

  async remove(kind: RevocationKind, subject: string): Promise<boolean> {
    return await this.#script(REMOVE, [revocationKey(kind, subject)]) === 1;
  }

  async list(): Promise<Revocation[]> {
    const reply = await this.#script(LIST, []);
    const now = this.#clock.now();
    const entries: Revocation[] = [];
    for (const value of Array.isArray(reply) ? reply : []) {
      // Not ours: skipped rather than failing every node's sync.
      const parsed = parseRevocation(String(value));
      if (parsed !== undefined && parsed.until > now) entries.push(parsed);
    }
    return entries;
  }

  health(): StoreHealth {
    return this.#link.health();
  }

  close(): Promise<void> {
    return this.#link.close();
  }

  #script(script: Script, args: string[]): Promise<unknown> {
    return this.#link.eval(script, [this.#hash, this.#zset], [String(this.#clock.now()), ...args]);
  }
}

function parseRevocation(text: string): Revocation | undefined {
  try {
    const result = RevocationSchema.safeParse(JSON.parse(text));
    return result.success ? result.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Creates a {@linkcode RedisRevocationStore} and waits up to
 * `startTimeoutMs` for its first connection; never rejects for an
 * unreachable Redis.
 */
export function createRedisRevocationStore(
  options: RedisRevocationStoreOptions & { startTimeoutMs?: number },
): Promise<RedisRevocationStore> {
  const { startTimeoutMs, ...rest } = options;
  return startRedisStore(new RedisRevocationStore(rest), startTimeoutMs);
}
