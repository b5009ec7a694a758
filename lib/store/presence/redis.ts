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
 * one Lua script (one round trip, atomic).
 *
 * On a Redis Cluster `<room>` is written `{<room>}` (a room's hashes and
 * index share its slot, the slot of its history and channel) and
 * `<instance>` in the liveness key `{<instance>}`. A script then touches one
 * room's keys only: the liveness key is written by its own command beside
 * it, a heartbeat runs one script per slot its rooms fall in (in parallel),
 * and `list` asks for the liveness of the room's instances after the script.
 *
 * Faults: while Redis is unreachable or a command gets no answer within
 * `commandTimeoutMs`, operations reject with `StoreUnavailableError` and `health()` is `degraded`; the
 * connection is replaced in the background by `RedisLink`, with a
 * bounded back-off whose timer `close` clears.
 *
 * @module
 */
import { keySlot } from "../../redis_cluster.ts";
import { RedisStoreLink, type RedisStoreOptions, Script, startRedisStore } from "../_redis.ts";
import type { StoreHealth } from "../types.ts";
import { parseEntry, type PresenceEntry, type PresenceStore, type RoomEntries } from "./types.ts";

/** Options for {@linkcode RedisPresenceStore}. */
export interface RedisPresenceStoreOptions extends RedisStoreOptions {
  /** @default {30000} */
  ttlMs?: number;
}

/** KEYS: hash, index, and alive unless on a Cluster. */
const SET = new Script(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if KEYS[3] then redis.call('SET', KEYS[3], '1', 'PX', ARGV[3]) end
return 1
`);

const DELETE = new Script(`
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return 1
`);

/**
 * KEYS: alive when ARGV[3] is 2 (its first room key), then (hash, index) per
 * room. Returns the 1-based room numbers whose hash was gone.
 */
const HEARTBEAT = new Script(`
local ttl, first = ARGV[1], tonumber(ARGV[3])
if first == 2 then redis.call('SET', KEYS[1], '1', 'PX', ttl) end
local missing = {}
for i = first, #KEYS, 2 do
  if redis.call('PEXPIRE', KEYS[i], ttl) == 1 then
    redis.call('SADD', KEYS[i + 1], ARGV[2])
    redis.call('PEXPIRE', KEYS[i + 1], ttl)
  else
    missing[#missing + 1] = (i - first) / 2 + 1
  end
end
return missing
`);

const ALIVE = new Script(`
local out = {}
for i = 1, #KEYS do out[i] = redis.call('EXISTS', KEYS[i]) end
return out
`);

/**
 * KEYS: index. ARGV: prefix, room (tagged on a Cluster), 1 to skip the
 * instances not alive (0 on a Cluster, where their liveness is elsewhere).
 * Returns {instance, {user, json, …}, …}.
 */
const LIST = new Script(`
local out = {}
for _, instance in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local hash = ARGV[1] .. ':presence:' .. instance .. ':' .. ARGV[2]
  local alive = ARGV[3] == '0' or redis.call('EXISTS', ARGV[1] .. ':presence-alive:' .. instance) == 1
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

/** KEYS: alive when ARGV[2] is 2 (its first room key), then (hash, index) per room. ARGV: instance. */
const DROP = new Script(`
if ARGV[2] == '2' then redis.call('DEL', KEYS[1]) end
for i = tonumber(ARGV[2]), #KEYS, 2 do
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
    const keys = [this.#hash(instance, room), this.#index(room)];
    const args = [userId, JSON.stringify(entry), String(this.ttlMs), instance];
    if (!this.#link.cluster) {
      await this.#link.eval(SET, [...keys, this.#alive(instance)], args);
      return;
    }
    await Promise.all([this.#link.eval(SET, keys, args), this.#touch(instance)]);
  }

  async delete(room: string, instance: string, userId: string): Promise<void> {
    await this.#link.eval(DELETE, [this.#hash(instance, room), this.#index(room)], [
      userId,
      instance,
    ]);
  }

  async heartbeat(instance: string, rooms: readonly string[]): Promise<string[]> {
    const ttl = String(this.ttlMs);
    if (!this.#link.cluster) {
      const missing = await this.#link.eval(HEARTBEAT, this.#roomKeys(instance, rooms, true), [
        ttl,
        instance,
        "2",
      ]) as number[];
      return missing.map((n) => rooms[n - 1]!);
    }
    const groups = this.#bySlot(rooms);
    const [, ...replies] = await Promise.all([
      this.#touch(instance),
      ...groups.map((group) =>
        this.#link.eval(HEARTBEAT, this.#roomKeys(instance, group, false), [ttl, instance, "1"])
      ),
    ]);
    return replies.flatMap((missing, i) => (missing as number[]).map((n) => groups[i]![n - 1]!));
  }

  async alive(instances: readonly string[]): Promise<Set<string>> {
    if (instances.length === 0) return new Set();
    const found = this.#link.cluster
      ? await Promise.all(instances.map((i) => this.#link.command(["EXISTS", this.#alive(i)])))
      : await this.#link.eval(ALIVE, instances.map((i) => this.#alive(i)), []) as number[];
    return new Set(instances.filter((_, i) => Number(found[i]) === 1));
  }

  async list(room: string): Promise<RoomEntries> {
    const cluster = this.#link.cluster;
    const reply = await this.#link.eval(LIST, [this.#index(room)], [
      this.#prefix,
      this.#link.tag(room),
      cluster ? "0" : "1",
    ]) as (string | string[])[];
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
    if (!cluster || out.size === 0) return out;
    // Their hashes expire within ttlMs; until then they are not listed.
    const alive = await this.alive([...out.keys()]);
    for (const instance of out.keys()) if (!alive.has(instance)) out.delete(instance);
    return out;
  }

  async drop(instance: string, rooms: readonly string[]): Promise<void> {
    if (!this.#link.cluster) {
      await this.#link.eval(DROP, this.#roomKeys(instance, rooms, true), [instance, "2"]);
      return;
    }
    await Promise.all([
      this.#link.command(["DEL", this.#alive(instance)]),
      ...this.#bySlot(rooms).map((group) =>
        this.#link.eval(DROP, this.#roomKeys(instance, group, false), [instance, "1"])
      ),
    ]);
  }

  health(): StoreHealth {
    return this.#link.health();
  }

  close(): Promise<void> {
    return this.#link.close();
  }

  /** On a Cluster, the liveness key on its own (it is in the instance's slot). */
  async #touch(instance: string): Promise<void> {
    await this.#link.command(["SET", this.#alive(instance), "1", "PX", String(this.ttlMs)]);
  }

  /** The alive key (when `withAlive`), then (hash, index) per room. */
  #roomKeys(instance: string, rooms: readonly string[], withAlive: boolean): string[] {
    const keys = withAlive ? [this.#alive(instance)] : [];
    for (const room of rooms) keys.push(this.#hash(instance, room), this.#index(room));
    return keys;
  }

  /** Rooms grouped by their slot: one script per group touches one slot. */
  #bySlot(rooms: readonly string[]): string[][] {
    const groups = new Map<number, string[]>();
    for (const room of rooms) {
      const slot = keySlot(this.#index(room));
      const group = groups.get(slot);
      if (group === undefined) groups.set(slot, [room]);
      else group.push(room);
    }
    return [...groups.values()];
  }

  #hash(instance: string, room: string): string {
    return `${this.#prefix}:presence:${instance}:${this.#link.tag(room)}`;
  }

  #index(room: string): string {
    return `${this.#prefix}:presence-room:${this.#link.tag(room)}`;
  }

  #alive(instance: string): string {
    return `${this.#prefix}:presence-alive:${this.#link.tag(instance)}`;
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
