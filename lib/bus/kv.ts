/**
 * `BUS=kv`: room traffic between isolates through Deno KV alone, with no
 * BroadcastChannel. Each room's envelopes go into a short-lived log in KV
 * (the KV history store's layout under `[…, "bus"]`: contiguous offsets per
 * room, entries kept `BUS_LOG_TTL_MS` and at most `BUS_LOG_SIZE` per room);
 * each isolate watches the log heads of the rooms it has members in (ten
 * keys per `kv.watch`) and reads what is new, in offset order.
 *
 * History rooms do not use this log: with `BUS=kv` the KV history store
 * publishes (`publishes: true`), its append is the publication and the room
 * manager reads new messages when the store's own head watch moves.
 *
 * What it promises: every envelope published after `subscribe` resolved
 * reaches every subscribed isolate once, in one order per room (the log's),
 * unless a reader falls more than the log's size or TTL behind, which counts
 * as a gap. `kv.watch` reaches the isolates of one process (and, on Deno
 * Deploy, the managed database's watchers); separate processes sharing a
 * local file do not see each other's watches: use Redis there.
 *
 * @module
 */
import { BaseBus, type BaseBusOptions } from "./_base.ts";
import { decodeEnvelope, encodeEnvelope } from "./_codec.ts";
import type { Bus, BusHealth, PublishOptions } from "./types.ts";
import { KvHistoryStore } from "../store/history/kv.ts";
import type { HistoryLimits, StreamPosition } from "../store/history/types.ts";
import type { GapHandler } from "./_sequence.ts";

/** How long a bus log entry is kept, in ms: long enough for any watcher to read it. */
export const BUS_LOG_TTL_MS = 30_000;
/** Most entries kept per room's log: a reader further behind than this counts a gap. */
export const BUS_LOG_SIZE = 1000;
/** Entries read per round trip. */
const READ_CHUNK = 500;

/** Options for {@linkcode KvBus}. */
export interface KvBusOptions extends BaseBusOptions {
  /** The database (not closed by the bus; see `onClose`). */
  kv: Deno.Kv;
  /**
   * First parts of every key (`BUS_CHANNEL`).
   *
   * @default {["realtime"]}
   */
  prefix?: Deno.KvKey;
  /**
   * Largest envelope carried, in bytes (frames beyond one KV value are split).
   *
   * @default {1048576}
   */
  maxEnvelopeBytes?: number;
  /** Called once per detected gap (logged by the caller). */
  onGap?: GapHandler;
  /** Called when the handler throws or the database fails (logged by the caller). */
  onError?: (error: unknown) => void;
  /** Called once by `close`. */
  onClose?: () => void;
  /**
   * How long a publish retries a failing database before it is dropped, in ms.
   *
   * @default {3000}
   */
  unavailableAfterMs?: number;
}

interface Cursor {
  epoch: string;
  /** Next offset to deliver. */
  next: number;
  /** Highest offset reported by the watch. */
  head: number;
  reading: boolean;
}

/**
 * The {@linkcode Bus} over Deno KV logs and watches.
 *
 * @example
 * ```ts ignore
 * const kv = await Deno.openKv(":memory:");
 * const bus = new KvBus({ kv });
 * bus.onEnvelope((envelope) => console.log(envelope.room));
 * await bus.subscribe("lobby");
 * await bus.close();
 * kv.close();
 * ```
 */
export class KvBus extends BaseBus implements Bus {
  readonly #log: KvHistoryStore;
  readonly #limits: HistoryLimits = { size: BUS_LOG_SIZE, ttlMs: BUS_LOG_TTL_MS };
  readonly #cursors = new Map<string, Cursor>();
  readonly #onGap: GapHandler;
  readonly #onError: (error: unknown) => void;
  readonly #onClose: () => void;
  readonly #retries = new Set<ReturnType<typeof setTimeout>>();
  #seq = 0;
  #gaps = 0;
  #dropped = 0;

  /** @param options the database, key prefix, instance id and hooks */
  constructor(options: KvBusOptions) {
    const {
      kv,
      prefix = ["realtime"],
      onGap = () => {},
      onError = () => {},
      onClose = () => {},
      unavailableAfterMs = 3000,
    } = options;
    super(options, { maxEnvelopeBytes: 1024 * 1024, onHandlerError: onError });
    this.#onGap = onGap;
    this.#onError = onError;
    this.#onClose = onClose;
    this.#log = new KvHistoryStore({ kv, prefix: [...prefix, "bus"], unavailableAfterMs, onError });
    this.#log.onHead((room, position) => this.#headMoved(room, position));
  }

  /** Rooms whose log head is watched. */
  get watched(): number {
    return this.#log.followed;
  }

  protected send(room: string, frame: string, options: PublishOptions): void {
    const envelope = { origin: this.instanceId, seq: ++this.#seq, room, frame, ...options };
    this.#log.append(room, encodeEnvelope(envelope), { limits: this.#limits }).catch((err) => {
      if (this.closed) return;
      this.#dropped++;
      this.#onError(err);
    });
  }

  async subscribe(room: string): Promise<void> {
    if (this.closed || this.#cursors.has(room)) return;
    // Watch first, then read the head: whatever lands after the read moves the watched head.
    this.#log.follow(room);
    const cursor: Cursor = { epoch: "", next: 1, head: 0, reading: false };
    this.#cursors.set(room, cursor);
    try {
      const position = await this.#log.position(room, this.#limits);
      cursor.epoch = position.epoch;
      cursor.next = position.offset + 1;
      cursor.head = Math.max(cursor.head, position.offset);
      if (cursor.head >= cursor.next) void this.#read(room, cursor);
    } catch (err) {
      if (this.#cursors.get(room) === cursor) {
        this.#cursors.delete(room);
        this.#log.unfollow(room);
      }
      throw err;
    }
  }

  unsubscribe(room: string): Promise<void> {
    if (this.#cursors.delete(room)) this.#log.unfollow(room);
    return Promise.resolve();
  }

  health(): BusHealth {
    const store = this.#log.health();
    const health: BusHealth = {
      status: store.status,
      transport: "kv",
      gaps: this.#gaps,
      // A frame too large for the log is lost to every other instance too.
      dropped: this.#dropped + this.oversize,
    };
    if (store.detail !== undefined) health.detail = store.detail;
    return health;
  }

  async close(): Promise<void> {
    if (!this.shut()) return;
    this.#cursors.clear();
    for (const timer of this.#retries) clearTimeout(timer);
    this.#retries.clear();
    await this.#log.close();
    this.#onClose();
  }

  #headMoved(room: string, position: StreamPosition): void {
    const cursor = this.#cursors.get(room);
    // Before `subscribe` read the position, the read that follows it covers this.
    if (cursor === undefined || cursor.epoch === "") return;
    if (position.epoch !== cursor.epoch) {
      // The log expired while idle and began again: everything in it is new.
      cursor.epoch = position.epoch;
      cursor.next = 1;
      cursor.head = 0;
    }
    cursor.head = Math.max(cursor.head, position.offset);
    if (cursor.head >= cursor.next) void this.#read(room, cursor);
  }

  /** Reads and delivers the room's log from `next` to the watched head; one read per room at a time. */
  async #read(room: string, cursor: Cursor): Promise<void> {
    if (cursor.reading) return;
    cursor.reading = true;
    try {
      while (!this.closed && this.#cursors.get(room) === cursor && cursor.next <= cursor.head) {
        const { entries, position, oldest } = await this.#log.read(room, {
          after: cursor.next - 1,
          limit: READ_CHUNK,
          limits: this.#limits,
        });
        if (this.#cursors.get(room) !== cursor) return;
        if (position.epoch !== cursor.epoch) {
          cursor.epoch = position.epoch;
          cursor.next = 1;
          cursor.head = position.offset;
          continue;
        }
        cursor.head = Math.max(cursor.head, position.offset);
        if (entries.length === 0) {
          // Everything from `next` on is gone (trimmed or expired).
          const resume = oldest === 0 ? position.offset + 1 : oldest;
          if (resume > cursor.next) this.#gap(room, resume - cursor.next);
          cursor.next = Math.max(cursor.next, resume);
          if (cursor.next > position.offset) cursor.head = position.offset;
          continue;
        }
        for (const entry of entries) {
          if (entry.offset > cursor.next) this.#gap(room, entry.offset - cursor.next);
          cursor.next = entry.offset + 1;
          const envelope = decodeEnvelope(entry.frame, this.maxEnvelopeBytes + 1024);
          if (envelope === undefined || envelope.origin === this.instanceId) continue;
          this.deliver(envelope);
        }
      }
    } catch (err) {
      if (!this.closed) {
        this.#onError(err);
        // Retried on the next head move; and soon, so a quiet room is not left behind.
        const timer = setTimeout(() => {
          this.#retries.delete(timer);
          if (this.#cursors.get(room) === cursor) void this.#read(room, cursor);
        }, 1000);
        this.#retries.add(timer);
      }
    } finally {
      cursor.reading = false;
    }
  }

  #gap(room: string, missing: number): void {
    this.#gaps += missing;
    this.#onGap("kv", missing, room);
  }
}
