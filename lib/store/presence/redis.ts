/**
 * The presence store on Redis, shared by every node (`STORE=redis`).
 *
 * Layout (`<prefix>` is `BUS_CHANNEL`; instance ids never contain `:`):
 * - `<prefix>:presence:<instance>:<room>`: a hash, user id → entry JSON: one
 *   node's users in one room, expiring `ttlMs` after its last write or heartbeat.
 * - `<prefix>:presence-room:<room>`: a set of the instances with a hash for
 *   the room, expiring likewise; `list` prunes instances whose hash is gone.
 * - `<prefix>:presence-alive:<instance>`: the node's liveness, `PX ttlMs`.
 *
 * A node killed with SIGKILL stops refreshing: its liveness key and hashes
 * expire within `ttlMs`, and nothing of it stays behind. Every operation is
 * one Lua script (one round trip, atomic). Not Redis Cluster-ready, like the
 * history store: a script touches keys of several hash slots.
 *
 * Faults: while Redis is unreachable or a command gets no answer within
 * `commandTimeoutMs`, operations reject with `StoreUnavailableError` and `health()` is `degraded`; the
 * connection is replaced in the background by `RedisLink`, with a
 * bounded back-off whose timer `close` clears.
 *
 * @module
 */
import { RedisStoreLink, type RedisStoreOptions, Script, startRedisStore } from "../_redis.ts";
import type { StoreHealth } from "../types.ts";
import { parseEntry, type PresenceEntry, type PresenceStore, type RoomEntries } from "./types.ts";

/** Options for {@linkcode RedisPresenceStore}. */
export interface RedisPresenceStoreOptions extends RedisStoreOptions {
  /** @default {30000} */
  ttlMs?: number;
}

const SET = new Script(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
return 1
`);

const DELETE = new Script(`
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return 1
`);

/** KEYS: alive, then (hash, index) per room. Returns the 1-based room numbers whose hash was gone. */
const HEARTBEAT = new Script(`
local ttl = ARGV[1]
redis.call('SET', KEYS[1], '1', 'PX', ttl)
local missing = {}
for i = 2, #KEYS, 2 do
  if redis.call('PEXPIRE', KEYS[i], ttl) == 1 then
    redis.call('SADD', KEYS[i + 1], ARGV[2])
    redis.call('PEXPIRE', KEYS[i + 1], ttl)
  else
    missing[#missing + 1] = (i / 2)
  end
end
return missing
`);

const ALIVE = new Script(`
local out = {}
for i = 1, #KEYS do out[i] = redis.call('EXISTS', KEYS[i]) end
return out
`);

/** KEYS: index. ARGV: prefix, room. Returns {instance, {user, json, …}, …}. */
const LIST = new Script(`
local out = {}
for _, instance in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local hash = ARGV[1] .. ':presence:' .. instance .. ':' .. ARGV[2]
  local alive = redis.call('EXISTS', ARGV[1] .. ':presence-alive:' .. instance) == 1
  local users = alive and redis.call('HGETALL', hash) or {}
  if #users == 0 then
    redis.call('SREM', KEYS[1], instance)
  else
    out[#out + 1] = instance
    out[#out + 1] = users
  end
end
return out
`);

/** KEYS: alive, then (hash, index) per room. ARGV: instance. */
const DROP = new Script(`
redis.call('DEL', KEYS[1])
for i = 2, #KEYS, 2 do
  redis.call('DEL', KEYS[i])
  redis.call('SREM', KEYS[i + 1], ARGV[1])
end
return 1
`);

/**
 * A {@linkcode PresenceStore} on Redis. Prefer {@linkcode createRedisPresenceStore},
 * which waits for the first connection.
 *
 * @example
 * ```ts ignore
 * import { RedisPresenceStore } from "./redis.ts";
 * const store = new RedisPresenceStore({ url: "redis://127.0.0.1:6379", ttlMs: 30_000 });
 * await store.set("lobby", bus.instanceId, "alice", { connections: 1 });
 * ```
 */
export class RedisPresenceStore implements PresenceStore {
  readonly kind = "redis";
  readonly ttlMs: number;
  readonly #prefix: string;
  readonly #link: RedisStoreLink;

  /** @param options URL, naming, TTL and bounds; connecting starts at once */
  constructor(options: RedisPresenceStoreOptions) {
    const { prefix = "realtime", ttlMs = 30_000 } = options;
    this.#link = new RedisStoreLink({
      ...options,
      name: "Redis presence store",
      store: "presence store",
      whileDown: "presence reads and writes fail until it is back",
    });
    this.#prefix = prefix;
    this.ttlMs = ttlMs;
  }

  /** Resolves true once connected, or false after `timeoutMs`. */
  ready(timeoutMs: number): Promise<boolean> {
    return this.#link.ready(timeoutMs);
  }

  async set(room: string, instance: string, userId: string, entry: PresenceEntry): Promise<void> {
    await this.#link.eval(SET, [
      this.#hash(instance, room),
      this.#index(room),
      this.#alive(instance),
    ], [
      userId,
      JSON.stringify(entry),
      String(this.ttlMs),
      instance,
    ]);
  }

  async delete(room: string, instance: string, userId: string): Promise<void> {
    await this.#link.eval(DELETE, [this.#hash(instance, room), this.#index(room)], [
      userId,
      instance,
    ]);
  }

  async heartbeat(instance: string, rooms: readonly string[]): Promise<string[]> {
    const keys = [this.#alive(instance)];
    for (const room of rooms) keys.push(this.#hash(instance, room), this.#index(room));
    const missing = await this.#link.eval(HEARTBEAT, keys, [
      String(this.ttlMs),
      instance,
    ]) as number[];
    return missing.map((n) => rooms[n - 1]!);
  }

  async alive(instances: readonly string[]): Promise<Set<string>> {
    if (instances.length === 0) return new Set();
    const found = await this.#link.eval(
      ALIVE,
      instances.map((i) => this.#alive(i)),
      [],
    ) as number[];
    return new Set(instances.filter((_, i) => found[i] === 1));
  }

  async list(room: string): Promise<RoomEntries> {
    const reply = await this.#link.eval(LIST, [this.#index(room)], [this.#prefix, room]) as (
      | string
      | string[]
    )[];
    const out: RoomEntries = new Map();
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const flat = reply[i + 1] as string[];
      const users = new Map<string, PresenceEntry>();
      for (let j = 0; j + 1 < flat.length; j += 2) {
        // Not ours (or corrupt): skipped rather than failing every read of the room.
        const entry = parseEntry(flat[j + 1]!);
        if (entry !== undefined) users.set(flat[j]!, entry);
      }
      out.set(reply[i] as string, users);
    }
    return out;
  }

  async drop(instance: string, rooms: readonly string[]): Promise<void> {
    const keys = [this.#alive(instance)];
    for (const room of rooms) keys.push(this.#hash(instance, room), this.#index(room));
    await this.#link.eval(DROP, keys, [instance]);
  }

  health(): StoreHealth {
    return this.#link.health();
  }

  close(): Promise<void> {
    return this.#link.close();
  }

  #hash(instance: string, room: string): string {
    return `${this.#prefix}:presence:${instance}:${room}`;
  }

  #index(room: string): string {
    return `${this.#prefix}:presence-room:${room}`;
  }

  #alive(instance: string): string {
    return `${this.#prefix}:presence-alive:${instance}`;
  }
}

/**
 * Creates a {@linkcode RedisPresenceStore} and waits up to `startTimeoutMs`
 * for its first connection; never rejects for an unreachable Redis.
 */
export function createRedisPresenceStore(
  options: RedisPresenceStoreOptions & { startTimeoutMs?: number },
): Promise<RedisPresenceStore> {
  const { startTimeoutMs, ...rest } = options;
  return startRedisStore(new RedisPresenceStore(rest), startTimeoutMs);
}
