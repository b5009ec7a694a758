/**
 * One history room's ordered delivery on this instance: messages reach the
 * local members in offset order, once each, whatever order the bus and the
 * store's replies bring them in; a gap is filled from the store before
 * anything after it is delivered; a member joining with `since` gets exactly
 * what it missed, then live traffic, with nothing skipped or sent twice.
 *
 * The store is the truth: offsets are assigned there, and everything this
 * class delivers either arrived with its offset or was read back from it.
 *
 * @module
 */
import type { Clock, TimerId } from "../clock.ts";
import { withPosition } from "../protocols/native/protocol.ts";
import type { Member } from "./rooms.ts";
import type {
  HistoryEntry,
  HistoryLimits,
  HistoryStore,
  StreamPosition,
} from "../store/history/types.ts";

/** Entries read from the store per round trip, when filling a gap or replaying. */
export const READ_CHUNK = 500;
/**
 * Bytes of a replay written between two calls to the member's
 * {@linkcode Member.drain}: the socket's backlog can pass its mark by about
 * this much (plus one frame) before the replay waits.
 */
export const REPLAY_SLICE_BYTES = 16 * 1024;
/** Most out-of-order messages held while waiting for the ones before them. */
export const MAX_EARLY = 10_000;
/** How long to wait before retrying a fill that failed (store down). */
const FILL_RETRY_MS = 1000;

/** What a joining member is told, before any replayed message. */
export interface StreamJoin {
  /** The position the member continues after. */
  position: StreamPosition;
  /** Present when the member asked to recover with `since`. */
  recovered?: boolean;
  /** With `recovered: true`: how many replayed messages follow. */
  missed?: number;
}

/** A recovery that began but could not be completed (store lost mid-replay, or trimmed under it). */
export class ReplayInterruptedError extends Error {
  /** @param message what went wrong */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ReplayInterruptedError";
  }
}

/**
 * A member's live frames queued behind its replay passed `maxHeldBytes`: it
 * reads slower than the room talks. Its queue was dropped; close it as a slow
 * consumer.
 */
export class ReplayOverflowError extends Error {
  /** Characters that were held when the bound was passed. */
  readonly heldBytes: number;
  /** @param heldBytes what was held */
  constructor(heldBytes: number) {
    super(`Cannot hold more live frames behind the replay: ${heldBytes} bytes held`);
    this.name = "ReplayOverflowError";
    this.heldBytes = heldBytes;
  }
}

/** Options for {@linkcode RoomStream}. */
export interface RoomStreamOptions {
  store: HistoryStore;
  limits: HistoryLimits;
  clock: Clock;
  /**
   * How long an offset gap waits for the missing message (in flight on the
   * bus or in our own append's reply) before it is read from the store.
   *
   * @default {50}
   */
  gapWaitMs?: number;
  /**
   * Most characters of live frames held for one member while its replay is
   * sent; past it the member's replay ends in {@linkcode ReplayOverflowError}.
   *
   * @default {Infinity}
   */
  maxHeldBytes?: number;
  /** Called with the number of messages lost for good (no longer in the store). */
  onGap?: (missing: number) => void;
  /** Called when a fill fails (store down); it is retried. */
  onError?: (err: unknown) => void;
}

interface Cursor {
  /** Offsets up to this one are not sent again. */
  floor: number;
  /** While a replay is being sent: live frames held until it ends. */
  queue: Array<[number, string]> | null;
  /** Characters of the frames in `queue`. */
  held: number;
  /** `held` passed `maxHeldBytes`: the queue was dropped, the replay must end. */
  overflowed: boolean;
}

/** A history room's delivery state on this instance. */
export class RoomStream {
  readonly room: string;
  readonly limits: HistoryLimits;
  readonly #store: HistoryStore;
  readonly #clock: Clock;
  readonly #gapWaitMs: number;
  readonly #maxHeldBytes: number;
  readonly #onGap: (missing: number) => void;
  readonly #onError: (err: unknown) => void;
  readonly #cursors = new Map<Member, Cursor>();
  /** Epoch of the stream being delivered; "" until {@linkcode RoomStream.open} read it. */
  #epoch = "";
  /** Next offset to deliver. */
  #next = 1;
  /** Highest offset known to exist (from an envelope or a head watch). */
  #head = 0;
  /** Messages that arrived ahead of `#next`, by offset. */
  readonly #early = new Map<number, string>();
  /** Arrivals before the stream's position was known. */
  #before: Array<[StreamPosition, string]> | null = [];
  #timer: TimerId | undefined;
  #filling = false;
  /** The store may have begun a new epoch: ask for its position before filling. */
  #resyncWanted = false;
  #closed = false;

  /** @param room the room @param options store, limits, clock and hooks */
  constructor(room: string, options: RoomStreamOptions) {
    this.room = room;
    this.limits = options.limits;
    this.#store = options.store;
    this.#clock = options.clock;
    this.#gapWaitMs = options.gapWaitMs ?? 50;
    this.#maxHeldBytes = options.maxHeldBytes ?? Infinity;
    this.#onGap = options.onGap ?? (() => {});
    this.#onError = options.onError ?? (() => {});
  }

  /** The position delivered so far on this instance. */
  get position(): StreamPosition {
    return { offset: this.#next - 1, epoch: this.#epoch };
  }

  /** Members with a cursor here. */
  get size(): number {
    return this.#cursors.size;
  }

  /** Held out-of-order messages (for tests and stats). */
  get held(): number {
    return this.#early.size;
  }

  /**
   * Reads the stream's position; call once the bus delivers the room, so that
   * nothing published after the read is missed.
   *
   * @throws {StoreUnavailableError}
   */
  async open(): Promise<void> {
    this.#store.follow?.(this.room);
    const position = await this.#store.position(this.room, this.limits);
    this.#epoch = position.epoch;
    this.#next = position.offset + 1;
    this.#head = position.offset;
    const before = this.#before ?? [];
    this.#before = null;
    for (const [pos, frame] of before) this.accept(pos, frame);
  }

  /** Stops timers and the store's head reports. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#store.unfollow?.(this.room);
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#early.clear();
    this.#cursors.clear();
  }

  /**
   * Takes a stored message (from the bus, or from our own append). Delivers it
   * and whatever it unblocks, in offset order; holds it if earlier ones are
   * missing; drops it if already delivered.
   */
  accept(position: StreamPosition, frame: string): void {
    if (this.#closed) return;
    if (this.#before !== null) {
      if (this.#before.length < MAX_EARLY) this.#before.push([position, frame]);
      return;
    }
    if (position.epoch !== this.#epoch) {
      // The store lost the past and began a new stream (or this is a stale
      // envelope from before): the store says which, and the fill reads it.
      this.#head = Math.max(this.#head, position.offset);
      this.#schedule(0, true);
      return;
    }
    const { offset } = position;
    if (offset < this.#next) return;
    if (offset > this.#next) {
      this.#head = Math.max(this.#head, offset);
      // Past the bound the message is not kept: the store has it, the fill reads it.
      if (this.#early.size < MAX_EARLY) this.#early.set(offset, frame);
      this.#schedule(this.#early.size >= MAX_EARLY ? 0 : this.#gapWaitMs);
      return;
    }
    this.#deliver(offset, frame);
    this.#drain();
  }

  /** The store reports that the room's head moved (a watch): read what we lack. */
  headMoved(position: StreamPosition): void {
    if (this.#closed || this.#before !== null) return;
    if (position.epoch === this.#epoch && position.offset < this.#next) return;
    this.#head = Math.max(this.#head, position.offset);
    this.#schedule(0, position.epoch !== this.#epoch);
  }

  /**
   * Reads the stream's position and whatever this instance has not delivered:
   * after the bus was disconnected, when envelopes may have been lost without
   * a later one showing the gap.
   */
  resync(): void {
    if (this.#closed || this.#before !== null) return;
    this.#schedule(0, true);
  }

  /**
   * Adds a member. Without `since` it starts after the delivered position.
   * With `since` in the current epoch and everything after it still stored,
   * `announce` is told `recovered: true` and the missed messages follow, then
   * live ones; otherwise `recovered: false` and only live ones follow.
   * `announce` is called before any frame reaches the member.
   *
   * @throws {ReplayInterruptedError} when a replay that began cannot finish;
   * the member is removed and should reconnect to recover from what it got.
   * @throws {ReplayOverflowError} when more than `maxHeldBytes` of live
   * frames piled up behind the replay; the member is removed.
   */
  async add(
    member: Member,
    since: StreamPosition | undefined,
    announce: (join: StreamJoin) => void,
  ): Promise<void> {
    if (since === undefined) {
      this.#cursors.set(member, {
        floor: this.#next - 1,
        queue: null,
        held: 0,
        overflowed: false,
      });
      announce({ position: this.position });
      return;
    }
    const cursor: Cursor = {
      floor: since.offset,
      queue: [],
      held: 0,
      overflowed: false,
    };
    this.#cursors.set(member, cursor);
    let first;
    try {
      first = await this.#store.read(this.room, {
        after: since.offset,
        limit: READ_CHUNK,
        limits: this.limits,
      });
    } catch {
      first = undefined;
    }
    if (this.#cursors.get(member) !== cursor) return; // left meanwhile
    const head = first?.position;
    const complete = first !== undefined && head !== undefined && head.epoch === since.epoch &&
      since.offset <= head.offset &&
      (head.offset === since.offset || first.entries[0]?.offset === since.offset + 1);
    if (!complete || head === undefined || head.epoch !== this.#epoch) {
      cursor.floor = this.#next - 1;
      cursor.queue = null;
      announce({ position: this.position, recovered: false });
      return;
    }
    announce({ position: head, recovered: true, missed: head.offset - since.offset });
    const last = await this.#replay(member, cursor, head, since.offset, first!.entries);
    if (last === null) return;
    const queued = cursor.queue ?? [];
    cursor.queue = null;
    cursor.held = 0;
    cursor.floor = last;
    for (const [offset, frame] of queued) {
      if (offset <= cursor.floor) continue;
      member.send(frame);
      cursor.floor = offset;
    }
  }

  /**
   * Sends the stored messages after `since` up to `head`, starting with
   * `entries` and reading on in chunks, paced by the member's drain; live
   * frames meanwhile wait in the cursor's queue. Returns the last offset sent,
   * or `null` when the member left or was closed meanwhile.
   *
   * @throws {ReplayInterruptedError}
   * @throws {ReplayOverflowError}
   */
  async #replay(
    member: Member,
    cursor: Cursor,
    head: StreamPosition,
    since: number,
    entries: HistoryEntry[],
  ): Promise<number | null> {
    const held = () => cursor.held;
    let last = since;
    let unpaced = 0;
    while (true) {
      for (const entry of entries) {
        if (entry.offset > head.offset) break;
        if (entry.offset !== last + 1) {
          this.#cursors.delete(member);
          throw new ReplayInterruptedError(
            `offsets ${last + 1}..${entry.offset - 1} were trimmed during the replay`,
          );
        }
        const frame = withPosition(entry.frame, entry.offset, head.epoch);
        member.send(frame);
        last = entry.offset;
        unpaced += frame.length;
        if (unpaced < REPLAY_SLICE_BYTES || member.drain === undefined) continue;
        unpaced = 0;
        // A fast reader keeps up; one that stops is closed by its session.
        const more = await member.drain(held);
        if (this.#cursors.get(member) !== cursor) return this.#leftDuringReplay(cursor);
        if (!more) {
          this.#cursors.delete(member);
          return null;
        }
      }
      if (last >= head.offset || entries.length === 0) break;
      try {
        entries = (await this.#store.read(this.room, {
          after: last,
          limit: READ_CHUNK,
          limits: this.limits,
        })).entries;
      } catch (err) {
        this.#cursors.delete(member);
        throw new ReplayInterruptedError("the history store failed during the replay", {
          cause: err,
        });
      }
      if (this.#cursors.get(member) !== cursor) return this.#leftDuringReplay(cursor);
    }
    if (last < head.offset) {
      this.#cursors.delete(member);
      throw new ReplayInterruptedError(`offsets after ${last} expired during the replay`);
    }
    return last;
  }

  /** A replaying member's cursor is gone: it left (`null`), or overflowed (throws). */
  #leftDuringReplay(cursor: Cursor): null {
    if (cursor.overflowed) throw new ReplayOverflowError(cursor.held);
    return null;
  }

  /** Removes a member's cursor. */
  remove(member: Member): void {
    this.#cursors.delete(member);
  }

  #deliver(offset: number, frame: string): void {
    this.#next = offset + 1;
    if (offset > this.#head) this.#head = offset;
    if (this.#cursors.size === 0) return;
    const positioned = withPosition(frame, offset, this.#epoch);
    for (const [member, cursor] of this.#cursors) {
      if (offset <= cursor.floor) continue;
      if (cursor.queue !== null) {
        cursor.queue.push([offset, positioned]);
        cursor.held += positioned.length;
        // Bounded at once, not when the replay next looks: its member may be asleep.
        if (cursor.held > this.#maxHeldBytes) {
          cursor.overflowed = true;
          cursor.queue = null;
          this.#cursors.delete(member);
        }
        continue;
      }
      cursor.floor = offset;
      member.send(positioned);
    }
  }

  #drain(): void {
    let frame = this.#early.get(this.#next);
    while (frame !== undefined) {
      this.#early.delete(this.#next);
      this.#deliver(this.#next, frame);
      frame = this.#early.get(this.#next);
    }
    if (this.#early.size === 0 && this.#head < this.#next && this.#timer !== undefined) {
      this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  #schedule(delayMs: number, resync = false): void {
    if (resync) this.#resyncWanted = true;
    if (this.#timer !== undefined) {
      if (delayMs > 0) return;
      this.#clock.clearTimeout(this.#timer);
    }
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      void this.#fill();
    }, delayMs);
  }

  /** Reads from the store what is missing between `#next` and the known head. */
  async #fill(): Promise<void> {
    if (this.#filling || this.#closed) return;
    this.#filling = true;
    try {
      if (this.#resyncWanted) {
        const position = await this.#store.position(this.room, this.limits);
        // Cleared only once read: a store still reconnecting fails here, and
        // the retry must ask again.
        this.#resyncWanted = false;
        if (this.#closed) return;
        if (position.epoch !== this.#epoch) this.#restart(position);
        this.#head = Math.max(this.#head, position.offset);
      }
      while (!this.#closed && this.#next <= this.#head) {
        const { entries, position } = await this.#store.read(this.room, {
          after: this.#next - 1,
          limit: Math.min(READ_CHUNK, this.#head - this.#next + 1),
          limits: this.limits,
        });
        if (this.#closed) return;
        if (position.epoch !== this.#epoch) {
          this.#restart(position);
          continue;
        }
        if (entries.length === 0) {
          // Nothing after #next is stored any more (expired), or what we
          // heard of never was: resume at the first message we still hold or
          // the store still has, counting what is lost for good.
          const held = this.#early.size > 0 ? Math.min(...this.#early.keys()) : Infinity;
          const resume = Math.min(held, position.offset + 1);
          if (resume <= this.#next) {
            this.#early.clear();
            this.#head = this.#next - 1;
            break;
          }
          this.#onGap(resume - this.#next);
          this.#next = resume;
          this.#head = Math.max(this.#head, this.#next - 1);
          this.#drain();
          continue;
        }
        for (const entry of entries) {
          if (entry.offset < this.#next) continue;
          if (entry.offset > this.#next) this.#onGap(entry.offset - this.#next);
          this.#early.delete(entry.offset);
          this.#deliver(entry.offset, entry.frame);
        }
        this.#drain();
      }
    } catch (err) {
      this.#onError(err);
      if (!this.#closed) this.#schedule(FILL_RETRY_MS);
    } finally {
      this.#filling = false;
    }
  }

  /** The store began a new stream: offsets restart at 1 and every cursor with them. */
  #restart(position: StreamPosition): void {
    this.#epoch = position.epoch;
    this.#next = 1;
    this.#head = position.offset;
    this.#early.clear();
    for (const cursor of this.#cursors.values()) {
      cursor.floor = 0;
      if (cursor.queue !== null) cursor.queue.length = 0;
      cursor.held = 0;
    }
  }
}
