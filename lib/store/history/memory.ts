/**
 * The history store inside one isolate: a ring of entries per room, all
 * rooms together bounded by bytes, nothing shared with other isolates.
 *
 * Each stream gets a fresh random epoch, so a client that comes back to
 * another isolate, or after a restart, sees an epoch it does not know and
 * gets `recovered: false` rather than someone else's offsets.
 *
 * Lifetimes:
 * - An entry leaves when its room's size or TTL pushes it out (checked on
 *   every append, read and position, and by a periodic sweep), or when all
 *   rooms together exceed `maxBytes` (oldest entry of any room first).
 * - A stream (its epoch and top offset) outlives its entries: it is dropped
 *   only once it is empty and untouched (no append, read or position) for
 *   its room's TTL. Until then a client holding its epoch can still learn
 *   that nothing was missed, or that what it missed is gone; offsets go on
 *   from the top, so none is ever reused within an epoch. Once dropped, the
 *   room's next stream has a new epoch and starts again at 1.
 * - Dedupe records expire after their window and are bounded in number.
 *
 * @module
 */
import { type Clock, systemClock, type TimerId } from "../../clock.ts";
import { newEpoch } from "./_epoch.ts";
import { checkLimits, checkReadLimit } from "./_limits.ts";
import type * as History from "./types.ts";
import { type StoreHealth, StoreUnavailableError } from "../types.ts";

/** Options for {@linkcode MemoryHistoryStore}. */
export interface MemoryHistoryStoreOptions {
  /**
   * Bound on all rooms' entries and streams together, in bytes as counted by
   * {@linkcode entryBytes} and {@linkcode streamBytes} (`HISTORY_MAX_BYTES`).
   *
   * @default {67108864}
   */
  maxBytes?: number;
  /**
   * Most dedupe keys remembered; the oldest is forgotten past this.
   *
   * @default {100000}
   */
  maxDedupeKeys?: number;
  /**
   * How often expired entries, idle streams and dedupe keys of rooms nobody
   * touches are released.
   *
   * @default {5000}
   */
  sweepIntervalMs?: number;
  /** @default systemClock */
  clock?: Clock;
}

/** Sizes of what the store holds, for tests and metrics. */
export interface MemoryHistoryStats {
  /** Streams held (rooms with an epoch), empty ones included. */
  streams: number;
  /** Entries held across all rooms. */
  entries: number;
  /** Bytes counted against `maxBytes`. */
  bytes: number;
  /** Dedupe keys remembered. */
  dedupeKeys: number;
}

/**
 * Bytes counted per entry besides its frame: the entry object (nine fields),
 * its ring slot, the string header and the wrapper left by flattening. Measured
 * with `bench/history_memory.ts`: a 85-character frame costs 262 bytes of heap.
 */
export const ENTRY_OVERHEAD_BYTES = 128;
/**
 * Bytes counted per stream besides its room name: the record, its epoch, its
 * ring array (V8 gives a first push room for 17), its slots in the stream map
 * and the set of empty streams, and what churn leaves in those tables.
 * Measured with `bench/history_memory.ts`: 50,000 rooms of one tiny message
 * each, the store full and rooms coming and going, hold 940 bytes per room.
 */
export const STREAM_OVERHEAD_BYTES = 640;

/**
 * Bytes an entry counts against `maxBytes`: its frame as V8 may hold it
 * (UTF-16, two bytes per code unit, an upper bound) plus
 * {@linkcode ENTRY_OVERHEAD_BYTES}.
 */
export function entryBytes(frame: string): number {
  return frame.length * 2 + ENTRY_OVERHEAD_BYTES;
}

/** Bytes a stream counts against `maxBytes`, entries aside. */
export function streamBytes(room: string): number {
  return room.length * 2 + STREAM_OVERHEAD_BYTES;
}

interface Entry {
  offset: number;
  frame: string;
  storedAt: number;
  /** When the entry expires under the TTL it was appended with. */
  expiresAt: number;
  bytes: number;
  stream: Stream;
  /** Neighbours in the store-wide append order, oldest first. */
  older: Entry | undefined;
  newer: Entry | undefined;
}

interface Stream {
  room: string;
  epoch: string;
  /** Offset of the newest message ever appended in this epoch. */
  top: number;
  /** Kept entries, oldest first, from `head`; contiguous offsets. */
  ring: (Entry | undefined)[];
  head: number;
  /** Last append, read or position. */
  touchedAt: number;
  /** TTL the room was last used with: how long it stays once empty and idle. */
  ttlMs: number;
}

interface DedupeRecord {
  key: string;
  offset: number;
  epoch: string;
  expiresAt: number;
}

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

/**
 * A {@linkcode History.HistoryStore} in this isolate's memory (`HISTORY_STORE=memory`):
 * nothing shared with other instances, so each numbers what it delivers
 * (lib/broker/per_isolate.ts). Dedupe keys are scoped per room.
 *
 * @example
 * ```ts
 * import { MemoryHistoryStore } from "./memory.ts";
 * const store = new MemoryHistoryStore({ maxBytes: 1024 * 1024 });
 * const limits = { size: 100, ttlMs: 60_000 };
 * const first = await store.append("chat", '{"type":"message"}', { limits });
 * const { entries } = await store.read("chat", { after: 0, limit: 10, limits });
 * console.assert(first.offset === 1 && entries.length === 1);
 * await store.close();
 * ```
 */
export class MemoryHistoryStore implements History.HistoryStore {
  readonly kind = "memory";
  readonly #maxBytes: number;
  readonly #maxDedupeKeys: number;
  readonly #clock: Clock;
  readonly #streams = new Map<string, Stream>();
  /** Streams without entries, least recently used first: the first to go past `maxBytes`. */
  readonly #empty = new Set<Stream>();
  readonly #dedupe = new Map<string, DedupeRecord>();
  /**
   * Dedupe records in the order they were made: (about) expiry order, and the
   * oldest is dropped first past the bound. A queue beside the map, because
   * iterating a Map from its start after deleting there skips every deleted
   * slot each time.
   */
  #dedupeOrder: (DedupeRecord | undefined)[] = [];
  #dedupeHead = 0;
  #oldest: Entry | undefined;
  #newest: Entry | undefined;
  #entries = 0;
  #bytes = 0;
  readonly #sweepTimer: TimerId;
  #closed = false;

  /** @param options bounds and clock; a sweep timer starts at once (stopped by `close`) */
  constructor(options: MemoryHistoryStoreOptions = {}) {
    const {
      maxBytes = DEFAULT_MAX_BYTES,
      maxDedupeKeys = 100_000,
      sweepIntervalMs = 5000,
      clock = systemClock,
    } = options;
    for (const [name, value] of Object.entries({ maxBytes, maxDedupeKeys, sweepIntervalMs })) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(
          `Cannot create memory history store: ${name} must be a positive integer, current value is ${value}`,
        );
      }
    }
    this.#maxBytes = maxBytes;
    this.#maxDedupeKeys = maxDedupeKeys;
    this.#clock = clock;
    this.#sweepTimer = clock.setInterval(() => this.sweep(), sweepIntervalMs);
  }

  append(
    room: string,
    frame: string,
    options: History.AppendOptions,
  ): Promise<History.AppendResult> {
    return this.#run(() => this.#append(room, frame, options));
  }

  position(room: string, limits: History.HistoryLimits): Promise<History.StreamPosition> {
    return this.#run(() => {
      checkLimits(limits);
      const now = this.#clock.now();
      const stream = this.#stream(room, limits, now);
      this.#trim(stream, limits, now);
      this.#evict(stream);
      return { offset: stream.top, epoch: stream.epoch };
    });
  }

  read(room: string, options: History.ReadOptions): Promise<History.ReadResult> {
    return this.#run(() => this.#read(room, options));
  }

  #append(room: string, frame: string, options: History.AppendOptions): History.AppendResult {
    const { limits, dedupe } = options;
    checkLimits(limits);
    const now = this.#clock.now();
    const dedupeKey = dedupe === undefined ? undefined : `${room}\n${dedupe.key}`;
    if (dedupeKey !== undefined) {
      const seen = this.#dedupe.get(dedupeKey);
      if (seen !== undefined && seen.expiresAt > now) {
        return { offset: seen.offset, epoch: seen.epoch, duplicate: true };
      }
    }
    const stream = this.#stream(room, limits, now);
    const offset = ++stream.top;
    flatten(frame);
    const entry: Entry = {
      offset,
      frame,
      storedAt: now,
      expiresAt: now + limits.ttlMs,
      bytes: entryBytes(frame),
      stream,
      older: this.#newest,
      newer: undefined,
    };
    if (this.#newest === undefined) this.#oldest = entry;
    else this.#newest.newer = entry;
    this.#newest = entry;
    stream.ring.push(entry);
    this.#empty.delete(stream);
    this.#entries++;
    this.#bytes += entry.bytes;
    this.#trim(stream, limits, now);
    this.#evict(stream);
    if (dedupeKey !== undefined && dedupe !== undefined) {
      const record = {
        key: dedupeKey,
        offset,
        epoch: stream.epoch,
        expiresAt: now + dedupe.windowMs,
      };
      this.#dedupe.set(dedupeKey, record);
      this.#dedupeOrder.push(record);
      this.#sweepDedupe(now);
    }
    return { offset, epoch: stream.epoch, duplicate: false };
  }

  #read(room: string, options: History.ReadOptions): History.ReadResult {
    const { after, before, limit, limits } = options;
    checkLimits(limits);
    checkReadLimit(limit);
    const now = this.#clock.now();
    const stream = this.#stream(room, limits, now);
    this.#trim(stream, limits, now);
    this.#evict(stream);
    const position = { offset: stream.top, epoch: stream.epoch };
    const kept = stream.ring.length - stream.head;
    const oldest = kept === 0 ? 0 : stream.top - kept + 1;
    if (kept === 0 || limit === 0) return { entries: [], position, oldest };
    // Offsets are contiguous, so the wanted range maps straight onto ring indexes.
    let from = Math.max(oldest, (after ?? 0) + 1);
    let to = Math.min(stream.top, (before ?? Infinity) - 1);
    if (after !== undefined) to = Math.min(to, from + limit - 1);
    else from = Math.max(from, to - limit + 1);
    const entries: History.HistoryEntry[] = [];
    for (let offset = from; offset <= to; offset++) {
      const entry = stream.ring[stream.head + offset - oldest];
      if (entry !== undefined) entries.push({ offset: entry.offset, frame: entry.frame });
    }
    return { entries, position, oldest };
  }

  health(): StoreHealth {
    return this.#closed
      ? { status: "degraded", transport: "memory", detail: "closed" }
      : { status: "ok", transport: "memory" };
  }

  /** Sizes of what is held, for tests and metrics. */
  stats(): MemoryHistoryStats {
    return {
      streams: this.#streams.size,
      entries: this.#entries,
      bytes: this.#bytes,
      dedupeKeys: this.#dedupe.size,
    };
  }

  /**
   * Releases expired entries, idle empty streams and expired dedupe keys of
   * every room; runs on its own every `sweepIntervalMs`.
   */
  sweep(): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    for (const stream of this.#streams.values()) {
      this.#expire(stream, now);
      this.#dropIfIdle(stream, now);
    }
    this.#sweepDedupe(now);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#clock.clearInterval(this.#sweepTimer);
    this.#streams.clear();
    this.#empty.clear();
    this.#dedupe.clear();
    this.#dedupeOrder = [];
    this.#oldest = this.#newest = undefined;
    this.#entries = this.#bytes = 0;
    return Promise.resolve();
  }

  /** Runs an operation, turning every throw into a rejection. */
  #run<T>(operation: () => T): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new StoreUnavailableError("history store is closed"));
    }
    try {
      return Promise.resolve(operation());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The room's stream, created with a fresh epoch if it has none; marks it touched. */
  #stream(room: string, limits: History.HistoryLimits, now: number): Stream {
    let stream = this.#streams.get(room);
    if (stream !== undefined) this.#dropIfIdle(stream, now);
    stream = this.#streams.get(room);
    if (stream === undefined) {
      stream = {
        room,
        epoch: newEpoch(),
        top: 0,
        ring: [],
        head: 0,
        touchedAt: now,
        ttlMs: limits.ttlMs,
      };
      this.#streams.set(room, stream);
      this.#bytes += streamBytes(room);
    }
    if (stream.ring.length === stream.head) {
      this.#empty.delete(stream);
      this.#empty.add(stream);
    }
    stream.touchedAt = now;
    stream.ttlMs = limits.ttlMs;
    return stream;
  }

  /** Applies the room's size and TTL. */
  #trim(stream: Stream, limits: History.HistoryLimits, now: number): void {
    while (stream.ring.length - stream.head > limits.size) this.#removeOldest(stream);
    const cutoff = now - limits.ttlMs;
    for (let e = stream.ring[stream.head]; e !== undefined; e = stream.ring[stream.head]) {
      if (e.storedAt > cutoff && e.expiresAt > now) break;
      this.#removeOldest(stream);
    }
  }

  /** Applies the TTL each entry was appended with (the sweep knows no limits). */
  #expire(stream: Stream, now: number): void {
    for (let e = stream.ring[stream.head]; e !== undefined; e = stream.ring[stream.head]) {
      if (e.expiresAt > now) break;
      this.#removeOldest(stream);
    }
  }

  /**
   * Store-wide bound. Streams without entries go first, least recently used
   * first (they only cost a client a `recovered: false`), then the oldest
   * entries of any room; `keep`, the stream in use, is never dropped.
   */
  #evict(keep: Stream): void {
    for (;;) {
      if (this.#bytes <= this.#maxBytes) return;
      const idle = this.#empty.values().next();
      if (!idle.done && idle.value !== keep) {
        this.#dropStream(idle.value);
      } else if (this.#oldest !== undefined) {
        this.#removeOldest(this.#oldest.stream);
      } else {
        return;
      }
    }
  }

  /** Removes a stream's oldest entry (the oldest of a stream is the only one ever removed). */
  #removeOldest(stream: Stream): void {
    const entry = stream.ring[stream.head];
    if (entry === undefined) return;
    stream.ring[stream.head++] = undefined;
    if (stream.head === stream.ring.length) {
      stream.ring = [];
      stream.head = 0;
      this.#empty.add(stream);
    } else if (stream.head >= 1024 && stream.head * 2 >= stream.ring.length) {
      stream.ring = stream.ring.slice(stream.head);
      stream.head = 0;
    }
    if (entry.older === undefined) this.#oldest = entry.newer;
    else entry.older.newer = entry.newer;
    if (entry.newer === undefined) this.#newest = entry.older;
    else entry.newer.older = entry.older;
    entry.older = entry.newer = undefined;
    this.#entries--;
    this.#bytes -= entry.bytes;
  }

  #dropIfIdle(stream: Stream, now: number): void {
    if (stream.ring.length === stream.head && stream.touchedAt + stream.ttlMs <= now) {
      this.#dropStream(stream);
    }
  }

  #dropStream(stream: Stream): void {
    if (this.#streams.get(stream.room) !== stream) return;
    while (stream.ring.length > stream.head) this.#removeOldest(stream);
    this.#streams.delete(stream.room);
    this.#empty.delete(stream);
    this.#bytes -= streamBytes(stream.room);
  }

  #sweepDedupe(now: number): void {
    const order = this.#dedupeOrder;
    for (let r = order[this.#dedupeHead]; r !== undefined; r = order[this.#dedupeHead]) {
      if (r.expiresAt > now && this.#dedupe.size <= this.#maxDedupeKeys) break;
      order[this.#dedupeHead++] = undefined;
      // A key made again after it expired has a newer record; that one stays.
      if (this.#dedupe.get(r.key) === r) this.#dedupe.delete(r.key);
    }
    if (this.#dedupeHead === order.length) {
      this.#dedupeOrder = [];
      this.#dedupeHead = 0;
    } else if (this.#dedupeHead >= 1024 && this.#dedupeHead * 2 >= order.length) {
      this.#dedupeOrder = order.slice(this.#dedupeHead);
      this.#dedupeHead = 0;
    }
  }
}

/**
 * Makes V8 keep `text` as one flat string. A frame built by concatenation
 * (`encodeRoomMessage`) is a rope of a dozen pieces until something reads it
 * whole, which a room with no member to send it to never does: held as is, a
 * tiny message costs 460 bytes instead of 260. Searching for a character
 * that is never there reads it whole once.
 */
function flatten(text: string): void {
  text.indexOf("\u0000");
}
