/**
 * Room history: the durable, bounded stream of a history room's messages,
 * numbered by offsets within an epoch. One interface; one file per backend
 * (`memory.ts`, `redis.ts`, `kv.ts`), all held to one contract: the cases in
 * `tests/_history_contract.ts`, run on each by `tests/history_store_contract_test.ts`.
 *
 * The store is the truth for a history room: a message exists once it has an
 * offset, and every instance delivers a room's messages in offset order.
 *
 * @module
 */
import type { Backend } from "../types.ts";

/**
 * Where a room's stream stands: the offset of its last message (0 when
 * empty) within an epoch. The epoch names one continuous stream; it changes
 * whenever the stream's past was lost, and offsets then restart at 1.
 */
export interface StreamPosition {
  /** Offset of the newest message, 0 for an empty stream. */
  offset: number;
  /** Opaque id of the continuous stream the offset counts in. */
  epoch: string;
}

/** How much of a room's past is kept. */
export interface HistoryLimits {
  /** Messages kept, newest first out of the window (1–10,000). */
  size: number;
  /** How long a message is kept after it was stored, in milliseconds. */
  ttlMs: number;
}

/** One stored message. */
export interface HistoryEntry {
  /** Its offset in the stream's epoch. */
  offset: number;
  /**
   * The `message` frame as built by `encodeRoomMessage`, without `offset` and
   * `epoch` (they are added on delivery, from the entry's position).
   */
  frame: string;
}

/** Options for {@linkcode HistoryStore.append}. */
export interface AppendOptions {
  /** The room's limits; trimming and expiry follow them. */
  limits: HistoryLimits;
  /**
   * Idempotency: when set, a second append with the same key within
   * `windowMs` stores nothing and answers the first append's offset with
   * `duplicate: true`. The caller builds the key (user, room and request id).
   */
  dedupe?: { key: string; windowMs: number };
}

/** What {@linkcode HistoryStore.append} did. */
export interface AppendResult extends StreamPosition {
  /** True when the dedupe key was seen: nothing was stored (or published) this time. */
  duplicate: boolean;
}

/** Options for {@linkcode HistoryStore.read}. */
export interface ReadOptions {
  /** Only entries with an offset above this (recovery). */
  after?: number;
  /** Only entries with an offset below this (paging backwards). */
  before?: number;
  /**
   * Most entries returned. With `after`, the oldest ones after it; otherwise
   * the newest ones (before `before`).
   */
  limit: number;
  /** Trimming and expiry to apply on read (entries past the TTL are not returned). */
  limits: HistoryLimits;
}

/** What {@linkcode HistoryStore.read} found. */
export interface ReadResult {
  /** Entries, oldest first, offsets contiguous and ascending. */
  entries: HistoryEntry[];
  /** The stream's position when read. */
  position: StreamPosition;
  /**
   * Offset of the oldest entry still kept (0 when none is): whether older
   * messages exist, and whether a recovery range is still complete, follow
   * from it.
   */
  oldest: number;
}

/**
 * The store behind history rooms.
 *
 * Contract (every backend, checked by the contract suite):
 * - `append` gives offsets 1, 2, 3, … within an epoch, one per stored message,
 *   never reused; concurrent appends from any number of callers or instances
 *   get distinct, contiguous offsets.
 * - A stream's epoch is created with it (by `position` or the first `append`)
 *   and kept while the stream has anything; it changes only when the past is
 *   lost, and offsets then restart at 1.
 * - `read` never returns an entry past the room's TTL or beyond its size.
 * - Faults of the backend reject with `StoreUnavailableError` (lib/store/types.ts).
 */
export interface HistoryStore extends Backend {
  /**
   * Stores a message and gives it the next offset. Telling the other
   * instances is the broker's job (lib/broker/), which may ask a store to do
   * both in one step (Redis).
   *
   * @throws {StoreUnavailableError} when the backend cannot be reached
   */
  append(room: string, frame: string, options: AppendOptions): Promise<AppendResult>;
  /**
   * The stream's current position, creating its epoch if the room has no
   * stream yet.
   *
   * @throws {StoreUnavailableError}
   */
  position(room: string, limits: HistoryLimits): Promise<StreamPosition>;
  /**
   * Reads stored entries.
   *
   * @throws {StoreUnavailableError}
   */
  read(room: string, options: ReadOptions): Promise<ReadResult>;
  /**
   * Optional, for stores that notice new messages by themselves (Deno KV's
   * `watch`): sets the one handler called when a followed room's head moves,
   * whoever appended. The room manager then reads the range it has not
   * delivered, so delivery does not depend on the bus alone.
   */
  onHead?(handler: (room: string, position: StreamPosition) => void): void;
  /** Optional: start reporting a room's head moves (first local member joined). */
  follow?(room: string): void;
  /** Optional: stop reporting a room's head moves (last local member left). */
  unfollow?(room: string): void;
}
