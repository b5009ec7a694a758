/**
 * The history store on Redis, shared by every instance: one total order per
 * room whoever publishes.
 *
 * Layout (`<prefix>` is `BUS_CHANNEL`):
 * - `<prefix>:history:<room>`: a Redis stream, entry id `<offset>-0`, fields
 *   `t` (store time, Redis clock, ms) and `f` (the frame).
 * - `<prefix>:history-meta:<room>`: a hash, `epoch` and `top` (last offset).
 * - `<prefix>:dedupe:<room>:<key>`: `<offset>:<epoch>`, expiring after the
 *   dedupe window.
 *
 * One Lua script per append does, atomically: dedupe check, epoch creation,
 * offset assignment, `XADD`, trimming (size, then TTL), expiry, and (when
 * asked with `publishAs`) the `PUBLISH` of the bus envelope carrying the
 * offset on `<prefix>:room:<room>`. Reads run a second script so that the
 * position and the entries come from one instant.
 *
 * On a Redis Cluster each `<room>` above is written `{<room>}`: the room is
 * the hash tag of all its keys and of its channel, so the script touches one
 * slot, and it publishes with `SPUBLISH` (sharded pub/sub, on the room's
 * shard only) instead of `PUBLISH`.
 *
 * Expiry: the stream expires `ttl` after its last message; the meta hash at
 * least as late (reads and `position` push it to `ttl` from now), so the
 * meta never dies before its stream, and a stream without meta is deleted
 * before a new epoch starts. A lost meta hash therefore always means a new
 * epoch with offsets from 1.
 *
 * Faults: while Redis is unreachable, or when a command gets no answer within
 * `commandTimeoutMs`, operations reject with `StoreUnavailableError`
 * and `health()` is `degraded`; the connection is replaced and retried in the
 * background by `RedisLink` (bounded back-off, like the Redis bus;
 * no timer outlives `close`). After a timeout the command may still have run: a retried append
 * with the same dedupe key is then answered as a duplicate.
 *
 * @module
 */
import { RedisStoreLink, Script } from "../_redis.ts";
import type { RedisTarget } from "../../redis_link.ts";
import { newEpoch } from "./_epoch.ts";
import { checkLimits, checkReadLimit } from "./_limits.ts";
import type * as History from "./types.ts";
import type { StoreHealth } from "../types.ts";

/** Options for {@linkcode RedisHistoryStore}. */
export interface RedisHistoryStoreOptions {
  /** `redis://` or `rediss://` URL, credentials included (`REDIS_URL`). */
  url: RedisTarget;
  /**
   * Prefix of every key and channel (`BUS_CHANNEL`), the same as the bus's.
   *
   * @default {"realtime"}
   */
  prefix?: string;
  /**
   * How long a command may go unanswered before the store counts Redis as
   * down (the connection is replaced).
   *
   * @default {2000}
   */
  commandTimeoutMs?: number;
  /** @default {5000} */
  connectTimeoutMs?: number;
  /**
   * Longest wait between reconnect attempts (the wait doubles from 100 ms).
   *
   * @default {2000}
   */
  maxReconnectDelayMs?: number;
  /**
   * Commands in flight before more are refused as unavailable.
   *
   * @default {10000}
   */
  maxPendingCommands?: number;
  /** Called once when Redis becomes unreachable, not again until it is back. */
  onError?: (error: Error) => void;
  /** Called when Redis is back after an outage reported through `onError`. */
  onRecover?: () => void;
}

/** Options for {@linkcode RedisHistoryStore.append}. */
export interface RedisAppendOptions extends History.AppendOptions {
  /**
   * When set, the same script also publishes the stored message on the bus
   * channel `<prefix>:room:<room>`, as an envelope from this instance id
   * with its position (`BUS=redis`: lib/broker/redis.ts). A duplicate is
   * neither stored nor published.
   */
  publishAs?: string;
}

/**
 * Trims a stream to its size and drops its expired head. Entries are in time
 * order, so the expired ones are a prefix; each append expires about one.
 */
const TRIM_LUA = `
local function trim(stream, size, ttl, now)
  redis.call('XTRIM', stream, 'MAXLEN', size)
  local cutoff = now - ttl
  local start, drop = '-', nil
  while true do
    local e = redis.call('XRANGE', stream, start, '+', 'COUNT', 1)[1]
    if e == nil or tonumber(e[2][2]) > cutoff then break end
    drop = e[1]
    start = '(' .. e[1]
  end
  if drop then
    redis.call('XTRIM', stream, 'MINID', string.format('%d-0', tonumber(string.match(drop, '^%d+')) + 1))
  end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The epoch, created (with an empty stream) when the meta hash is missing.
local function epoch_of(stream, meta, candidate)
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch then return epoch end
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', candidate, 'top', 0)
  return candidate
end
-- The meta hash lives at least ttl from now, never shorter than its stream.
local function keep_meta(meta, ttl)
  if redis.call('PTTL', meta) < ttl then redis.call('PEXPIRE', meta, ttl) end
end
`;

/**
 * KEYS: stream, meta, dedupe key (or "" without dedupe).
 * ARGV: frame, size, ttl ms, dedupe window ms, candidate epoch, channel ("" to
 * not publish), envelope header without its closing brace, PUBLISH or SPUBLISH.
 * Returns {duplicate 0|1, offset, epoch}.
 */
const APPEND_LUA = TRIM_LUA + `
local stream, meta, dkey = KEYS[1], KEYS[2], KEYS[3]
local frame, size, ttl, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if window > 0 then
  local seen = redis.call('GET', dkey)
  if seen then
    local sep = string.find(seen, ':', 1, true)
    return {1, tonumber(string.sub(seen, 1, sep - 1)), string.sub(seen, sep + 1)}
  end
end
local epoch = epoch_of(stream, meta, ARGV[5])
local offset = redis.call('HINCRBY', meta, 'top', 1)
local now = now_ms()
redis.call('XADD', stream, string.format('%d-0', offset), 't', string.format('%d', now), 'f', frame)
trim(stream, size, ttl, now)
redis.call('PEXPIRE', stream, ttl)
keep_meta(meta, ttl)
if window > 0 then
  redis.call('SET', dkey, string.format('%d:', offset) .. epoch, 'PX', window)
end
if ARGV[6] ~= '' then
  redis.call(ARGV[8], ARGV[6], ARGV[7] .. string.format(',"offset":%d,"stream":"', offset) .. epoch .. '"}\\n' .. frame)
end
return {0, offset, epoch}
`;

/**
 * KEYS: stream, meta. ARGV: candidate epoch, size, ttl ms, mode ("after",
 * "newest"), after, before (0: none), limit.
 * Returns {top, epoch, oldest, offset1, frame1, offset2, frame2, …}, oldest first.
 */
const READ_LUA = TRIM_LUA + `
local stream, meta = KEYS[1], KEYS[2]
local size, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local mode, after, before, limit = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local epoch = epoch_of(stream, meta, ARGV[1])
keep_meta(meta, ttl)
trim(stream, size, ttl, now_ms())
local top = tonumber(redis.call('HGET', meta, 'top'))
local out = {top, epoch, 0}
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
if first == nil then return out end
out[3] = tonumber(string.match(first[1], '^%d+'))
local upper = '+'
if before > 0 then
  if before <= 1 then return out end
  upper = string.format('%d-0', before - 1)
end
if limit <= 0 then return out end
local entries
if mode == 'after' then
  entries = redis.call('XRANGE', stream, string.format('%d-0', after + 1), upper, 'COUNT', limit)
else
  entries = redis.call('XREVRANGE', stream, upper, '-', 'COUNT', limit)
end
local from, to, step = 1, #entries, 1
if mode ~= 'after' then from, to, step = #entries, 1, -1 end
for i = from, to, step do
  local e = entries[i]
  out[#out + 1] = tonumber(string.match(e[1], '^%d+'))
  out[#out + 1] = e[2][4]
end
return out
`;

const APPEND = new Script(APPEND_LUA);
const READ = new Script(READ_LUA);

/**
 * A {@linkcode History.HistoryStore} on Redis (`HISTORY_STORE=redis`): shared by all
 * instances; publishes a message in the same script when asked
 * (`publishAs`). Prefer {@linkcode createRedisHistoryStore},
 * which waits for the first connection.
 *
 * @example
 * ```ts ignore
 * import { RedisHistoryStore } from "./redis.ts";
 * const store = new RedisHistoryStore({
 *   url: "redis://127.0.0.1:6379",
 *   prefix: "realtime",
 * });
 * await store.ready(2000);
 * const { offset, epoch } = await store.append("chat", frame, {
 *   limits: { size: 100, ttlMs: 600_000 },
 *   dedupe: { key: `${user}\n${room}\n${id}`, windowMs: 300_000 },
 *   publishAs: bus.instanceId,
 * });
 * ```
 */
export class RedisHistoryStore implements History.HistoryStore {
  readonly kind = "redis";
  readonly #prefix: string;
  readonly #link: RedisStoreLink;

  /** @param options Redis URL, naming, publishing, bounds and hooks; connecting starts at once */
  constructor(options: RedisHistoryStoreOptions) {
    // The link's own defaults hold (2 s per command, 5 s to connect, back-off up to 2 s).
    const { prefix = "realtime", maxPendingCommands = 10_000, ...link } = options;
    this.#link = new RedisStoreLink({
      ...link,
      name: "Redis history store",
      store: "history store",
      whileDown: "history rooms answer unavailable until it is back",
      maxPendingCommands,
      // Commands in flight fail as unavailable at once rather than finishing.
      closeFlushMs: 0,
    });
    this.#prefix = prefix;
  }

  /**
   * Resolves true once connected (at once if connected now), or false after
   * `timeoutMs` or on close; the store keeps trying either way.
   */
  ready(timeoutMs: number): Promise<boolean> {
    return this.#link.ready(timeoutMs);
  }

  async append(
    room: string,
    frame: string,
    options: RedisAppendOptions,
  ): Promise<History.AppendResult> {
    const { limits, dedupe, publishAs } = options;
    checkLimits(limits);
    const window = dedupe === undefined ? 0 : Math.max(1, Math.ceil(dedupe.windowMs));
    const channel = publishAs === undefined ? "" : `${this.#prefix}:room:${this.#link.tag(room)}`;
    const header = publishAs === undefined
      ? ""
      : JSON.stringify({ origin: publishAs, seq: 0, room }).slice(0, -1);
    const reply = await this.#link.eval(
      APPEND,
      [
        this.#streamKey(room),
        this.#metaKey(room),
        dedupe === undefined ? this.#dedupeKey(room, "") : this.#dedupeKey(room, dedupe.key),
      ],
      [
        frame,
        String(limits.size),
        String(Math.ceil(limits.ttlMs)),
        String(window),
        newEpoch(),
        channel,
        header,
        this.#link.cluster ? "SPUBLISH" : "PUBLISH",
      ],
    );
    const [duplicate, offset, epoch] = reply as [number, number, string];
    return { offset, epoch, duplicate: duplicate === 1 };
  }

  async position(room: string, limits: History.HistoryLimits): Promise<History.StreamPosition> {
    return (await this.read(room, { limit: 0, limits })).position;
  }

  async read(room: string, options: History.ReadOptions): Promise<History.ReadResult> {
    const { after, before, limit, limits } = options;
    checkLimits(limits);
    checkReadLimit(limit);
    const reply = await this.#link.eval(
      READ,
      [this.#streamKey(room), this.#metaKey(room)],
      [
        newEpoch(),
        String(limits.size),
        String(Math.ceil(limits.ttlMs)),
        after === undefined ? "newest" : "after",
        String(Math.max(0, after ?? 0)),
        String(before === undefined ? 0 : Math.max(1, before)),
        String(limit),
      ],
    ) as (number | string)[];
    const entries: History.HistoryEntry[] = [];
    for (let i = 3; i + 1 < reply.length; i += 2) {
      entries.push({ offset: reply[i] as number, frame: reply[i + 1] as string });
    }
    return {
      entries,
      position: { offset: reply[0] as number, epoch: reply[1] as string },
      oldest: reply[2] as number,
    };
  }

  health(): StoreHealth {
    return this.#link.health();
  }

  close(): Promise<void> {
    return this.#link.close();
  }

  #streamKey(room: string): string {
    return `${this.#prefix}:history:${this.#link.tag(room)}`;
  }

  #metaKey(room: string): string {
    return `${this.#prefix}:history-meta:${this.#link.tag(room)}`;
  }

  #dedupeKey(room: string, key: string): string {
    return `${this.#prefix}:dedupe:${this.#link.tag(room)}:${key}`;
  }
}

/** Options for {@linkcode createRedisHistoryStore}. */
export interface CreateRedisHistoryStoreOptions extends RedisHistoryStoreOptions {
  /**
   * How long to wait for the first connection before returning a degraded
   * store that keeps reconnecting.
   *
   * @default {2000}
   */
  startTimeoutMs?: number;
}

/**
 * Creates a {@linkcode RedisHistoryStore} and waits (up to `startTimeoutMs`)
 * for its first connection. Never rejects for an unreachable Redis.
 *
 * @example
 * ```ts ignore
 * import { createRedisHistoryStore } from "./redis.ts";
 * const store = await createRedisHistoryStore({
 *   url: "redis://127.0.0.1:6379",
 *   onError: (err) => console.error(err.message),
 * });
 * ```
 */
export async function createRedisHistoryStore(
  options: CreateRedisHistoryStoreOptions,
): Promise<RedisHistoryStore> {
  const { startTimeoutMs = 2000, ...storeOptions } = options;
  const store = new RedisHistoryStore(storeOptions);
  await store.ready(startTimeoutMs);
  return store;
}
