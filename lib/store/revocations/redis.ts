/**
 * Revocations in Redis, shared by every node: a hash of entries
 * (`<prefix>:revocations`, field `<kind>:<subject>`, value the JSON entry)
 * and a sorted set of their expiry times (`<prefix>:revocations:until`), so
 * that expired entries are dropped atomically by the scripts that add and
 * list, and never by a node that raced a newer `add`.
 *
 * The connection is opened on first use and replaced after any fault; every
 * command has a deadline. While Redis is unreachable, calls reject with
 * {@linkcode StoreUnavailableError} and `health()` says so.
 *
 * @module
 */
import { createClient } from "@redis/client";
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import type { Revocation, RevocationKind, RevocationStore, StoreHealth } from "./types.ts";
import { revocationKey, RevocationSchema, StoreUnavailableError } from "./types.ts";
import { errorMessage } from "../../errors.ts";

type RedisClient = ReturnType<typeof createClient>;

/** Options for {@linkcode RedisRevocationStore}. */
export interface RedisRevocationStoreOptions {
  /** `redis://` or `rediss://` URL, credentials included. */
  url: string;
  /** Prefix of the keys, so several apps can share one Redis. @default "realtime" */
  prefix?: string;
  /** Most active revocations held; past it the one that lapses soonest makes room. @default 100_000 */
  maxEntries?: number;
  /** Time source for expiry (passed to the scripts, not Redis's own clock). @default systemClock */
  clock?: Clock;
  /** Time allowed to open a connection. @default 2000 */
  connectTimeoutMs?: number;
  /** Time allowed for one command. @default 2000 */
  commandTimeoutMs?: number;
}

// KEYS: hash, zset. ARGV: now. Drops expired entries; used by every script.
const PRUNE = `
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, field in ipairs(expired) do redis.call('HDEL', KEYS[1], field) end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1]) end
`;
// ARGV: now, field, value, until, max. Stores; when full, first drops the
// entry that lapses soonest and returns its value (1 when none was dropped).
const ADD = `${PRUNE}
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
return evicted`;
// ARGV: now, field. Returns 1 when an active entry was removed.
const REMOVE = `${PRUNE}
redis.call('ZREM', KEYS[2], ARGV[2])
return redis.call('HDEL', KEYS[1], ARGV[2])`;
// ARGV: now. Returns the values of every active entry.
const LIST = `${PRUNE}
return redis.call('HVALS', KEYS[1])`;

/**
 * The shared {@linkcode RevocationStore} on Redis.
 *
 * @example
 * ```ts ignore
 * import { RedisRevocationStore } from "./redis.ts";
 * const store = new RedisRevocationStore({ url: "redis://127.0.0.1:6379" });
 * console.log(await store.list());
 * await store.close();
 * ```
 */
export class RedisRevocationStore implements RevocationStore {
  readonly kind = "redis" as const;
  readonly shared = true;
  readonly #url: string;
  readonly #hash: string;
  readonly #zset: string;
  readonly #max: number;
  readonly #clock: Clock;
  readonly #connectTimeoutMs: number;
  readonly #commandTimeoutMs: number;
  #client: RedisClient | undefined;
  #connecting: Promise<RedisClient> | undefined;
  #health: StoreHealth = { status: "ok", transport: "redis" };
  #closed = false;

  /** @param options URL, naming, bound, clock and deadlines; nothing connects until first use */
  constructor(options: RedisRevocationStoreOptions) {
    const {
      url,
      prefix = "realtime",
      maxEntries = 100_000,
      clock = systemClock,
      connectTimeoutMs = 2000,
      commandTimeoutMs = 2000,
    } = options;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(
        `Cannot create revocation store: maxEntries must be a positive integer, current value is ${maxEntries}`,
      );
    }
    this.#url = url;
    this.#hash = `${prefix}:revocations`;
    this.#zset = `${prefix}:revocations:until`;
    this.#max = maxEntries;
    this.#clock = clock;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#commandTimeoutMs = commandTimeoutMs;
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
    return { ...this.#health };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const client = this.#client;
    this.#client = undefined;
    if (client !== undefined) destroy(client);
    // A connect in flight notices #closed when it settles and destroys its client.
    await this.#connecting?.catch(() => {});
  }

  async #script(script: string, args: string[]): Promise<unknown> {
    if (this.#closed) throw new StoreUnavailableError("the revocation store is closed");
    let client: RedisClient;
    try {
      client = await this.#connected();
      const reply = await this.#deadline(
        client.sendCommand([
          "EVAL",
          script,
          "2",
          this.#hash,
          this.#zset,
          String(this.#clock.now()),
          ...args,
        ]),
        () => this.#drop(client),
      );
      this.#health = { status: "ok", transport: "redis" };
      return reply;
    } catch (err) {
      const detail = errorMessage(err);
      this.#health = { status: "degraded", transport: "redis", detail };
      throw new StoreUnavailableError(`revocation store: ${detail}`, 1000, { cause: err });
    }
  }

  #connected(): Promise<RedisClient> {
    if (this.#client?.isReady) return Promise.resolve(this.#client);
    this.#connecting ??= this.#connect().finally(() => this.#connecting = undefined);
    return this.#connecting;
  }

  async #connect(): Promise<RedisClient> {
    const client: RedisClient = createClient({
      url: this.#url,
      disableOfflineQueue: true,
      // The client's own reconnect sleeps on a timer that close() cannot
      // cancel; a fresh connection on the next call does the same job.
      socket: { connectTimeout: this.#connectTimeoutMs, reconnectStrategy: false },
    });
    let open = false;
    client.on("error", () => {
      if (open) this.#drop(client);
    });
    try {
      await client.connect();
    } catch (err) {
      destroy(client);
      throw err;
    }
    if (this.#closed) {
      destroy(client);
      throw new Error("closed");
    }
    open = true;
    this.#client = client;
    return client;
  }

  #drop(client: RedisClient): void {
    if (this.#client === client) this.#client = undefined;
    destroy(client);
  }

  async #deadline<T>(promise: Promise<T>, onTimeout: () => void): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        onTimeout();
        reject(new Error(`no answer within ${this.#commandTimeoutMs} ms`));
      }, this.#commandTimeoutMs);
    });
    try {
      return await Promise.race([promise, timeout]);
    } finally {
      clearTimeout(timer);
    }
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

function destroy(client: RedisClient): void {
  try {
    client.destroy();
  } catch {
    // Already closed.
  }
}
