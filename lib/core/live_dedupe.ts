/**
 * Idempotency keys of `POST /api/publish` (and `server.publish`) in rooms
 * without history: the store dedupes history rooms, but a live room has no
 * store, so this isolate remembers each (room, key) it delivered for the
 * dedupe window, in a map bounded by count. A retry that lands on another
 * isolate or node is delivered again (the README says so).
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import { apiDedupeKey } from "./dedupe.ts";
import type { PublishOutcome, RoomManager } from "./rooms.ts";

/** Options for {@linkcode LiveDedupe}. */
export interface LiveDedupeOptions {
  /** How long a key is remembered (`DEDUP_WINDOW_SEC` in ms). */
  windowMs: number;
  /**
   * Keys remembered at most, across rooms; past it the oldest is forgotten.
   * @default 100_000
   */
  maxKeys?: number;
  clock: Clock;
}

/** Remembers recent (room, key) pairs of live-room publishes on this isolate. */
export class LiveDedupe {
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #clock: Clock;
  // Insertion order is expiry order: every key lives for the same window.
  readonly #expiresAt = new Map<string, number>();

  /** Builds an empty window. */
  constructor(options: LiveDedupeOptions) {
    const { windowMs, maxKeys = 100_000, clock } = options;
    if (!(maxKeys >= 1)) throw new RangeError(`Cannot keep keys: maxKeys is ${maxKeys}`);
    this.#windowMs = windowMs;
    this.#maxKeys = maxKeys;
    this.#clock = clock;
  }

  /** Keys remembered now (for tests and stats). */
  get size(): number {
    return this.#expiresAt.size;
  }

  /**
   * True when `key` was claimed in `room` within the window (a duplicate);
   * otherwise claims it and answers false.
   */
  claim(room: string, key: string): boolean {
    const now = this.#clock.now();
    this.#sweep(now);
    const id = `${room.length}:${room}:${key}`;
    const expiresAt = this.#expiresAt.get(id);
    if (expiresAt !== undefined && expiresAt > now) return true;
    this.#expiresAt.delete(id);
    this.#expiresAt.set(id, now + this.#windowMs);
    if (this.#expiresAt.size > this.#maxKeys) {
      const oldest = this.#expiresAt.keys().next();
      if (oldest.done !== true) this.#expiresAt.delete(oldest.value);
    }
    return false;
  }

  /**
   * Forgets a claim whose publish failed (too large, store down), so a retry
   * with the same key is delivered.
   */
  release(room: string, key: string): void {
    this.#expiresAt.delete(`${room.length}:${room}:${key}`);
  }

  #sweep(now: number): void {
    for (const [id, expiresAt] of this.#expiresAt) {
      if (expiresAt > now) return;
      this.#expiresAt.delete(id);
    }
  }
}

/**
 * Publishes a frame for a caller without a socket (`POST /api/publish`,
 * `server.publish`): `from` names the caller, `idempotencyKey` (optional)
 * makes a retry within the dedupe window a no-op answered `duplicate: true`,
 * in history rooms by the store, elsewhere by this isolate's window.
 */
export type ApiPublisher = (
  room: string,
  frame: string,
  caller: { from: string; idempotencyKey?: string | undefined },
) => Promise<PublishOutcome>;

/** Builds the {@linkcode ApiPublisher} over the rooms and one live-room window. */
export function apiPublisher(rooms: RoomManager, dedupe: LiveDedupe): ApiPublisher {
  return async (room, frame, { from, idempotencyKey }) => {
    if (idempotencyKey === undefined) return await rooms.publish(room, frame);
    const dedupeKey = apiDedupeKey(from, idempotencyKey);
    if (rooms.historyLimits(room) !== null) return await rooms.publish(room, frame, { dedupeKey });
    if (dedupe.claim(room, dedupeKey)) return { recipients: 0, duplicate: true };
    try {
      return await rooms.publish(room, frame);
    } catch (err) {
      dedupe.release(room, dedupeKey);
      throw err;
    }
  };
}
