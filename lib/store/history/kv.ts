/**
 * The history store on Deno KV (`HISTORY_STORE=kv`): shared by every isolate
 * that opens the same database (the isolates of `deno serve --parallel` on
 * one file; every region of a Deno Deploy app on its managed database), and
 * durable, so a restarted node keeps its rooms' history.
 *
 * Layout under the key prefix (`BUS_CHANNEL`, so apps can share a database):
 * - `[…, "history", room, "head"]` → `{ epoch, offset, expiresAt }`: the
 *   stream's position, and the one key watched for new messages. It lives
 *   twice the room's TTL after the last append, so it outlives every message.
 * - `[…, "history", room, "m", epoch, offset]` → `{ frame | bytes, at, exp, parts }`
 *   with `expireIn` = the room's TTL; offsets beyond the room's size are
 *   deleted in the append that pushes them out.
 * - `[…, "history", room, "x", epoch, offset, i]`: the rest of a frame too
 *   large for one KV value (64 KiB), same expiry.
 * - `[…, "history", room, "d", key]` → `{ offset, epoch, expiresAt }`: a
 *   dedupe record, `expireIn` = its window.
 *
 * Offsets are assigned in one atomic commit that checks the head's
 * versionstamp (and every dedupe key's), so concurrent writers anywhere get
 * contiguous offsets; a writer that lost retries with fresh reads. Appends to
 * one room from this isolate are batched into one commit while the previous
 * one is in flight, so contention is only ever between isolates.
 *
 * KV deletes expired keys lazily, so every read also checks the expiry times
 * stored in values, against the injected clock.
 *
 * @module
 */
import { type Clock, systemClock } from "../../clock.ts";
import { CONFLICT, getAll, keyPart, KvHandle, type KvHandleOptions } from "../_kv.ts";
import { KeyWatcher } from "../_kv_watch.ts";
import { newEpoch } from "./_epoch.ts";
import {
  type DedupeRecord,
  fresh,
  type Head,
  isDedupe,
  isHead,
  isStored,
  type StoredEntry,
  validHead,
} from "./_kv_records.ts";
import { checkLimits, checkReadLimit } from "./_limits.ts";
import type * as History from "./types.ts";
import { type StoreHealth, StoreUnavailableError } from "../types.ts";

/** Options for {@linkcode KvHistoryStore}. */
export interface KvHistoryStoreOptions extends KvHandleOptions {
  /**
   * First parts of every key.
   *
   * @default {["realtime"]}
   */
  prefix?: Deno.KvKey;
  /**
   * Told when an operation gives up (the store is unavailable) and when a
   * head watch fails; transient failures that a retry cured are only counted
   * ({@linkcode KvHistoryStore.retries}).
   */
  onError?: (err: unknown) => void;
  /** Time for expiry checks. @default systemClock */
  clock?: Clock;
}

interface Pending {
  frame: string;
  limits: History.HistoryLimits;
  dedupe: { key: string; windowMs: number } | undefined;
  resolve(result: History.AppendResult): void;
  reject(err: unknown): void;
}

/** Frames up to this many UTF-16 units are stored as strings (V8 serializes ≤ 2 bytes each). */
const MAX_INLINE_CHARS = 30_000;
/** Bytes per part of a large frame (KV values are at most 64 KiB). */
const PART_BYTES = 60_000;
/** Most appends in one commit. */
const MAX_BATCH = 64;
/** Most frame bytes in one commit (KV allows 800 KiB of keys and values per commit). */
const MAX_BATCH_BYTES = 400_000;
/** Most dedupe keys in one commit (KV allows 100 checks; one is the head). */
const MAX_BATCH_DEDUPE = 64;
/**
 * Most appends waiting for one room on this isolate: past it (the database
 * is stalling and publishers keep going) appends are refused at once rather
 * than queued without bound.
 */
const MAX_QUEUED = 10_000;
/** Entries listed per round trip. */
const LIST_BATCH = 500;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A {@linkcode History.HistoryStore} on Deno KV: seen by every isolate on the
 * database, durable (with `BUS=kv` the append is the publication: see
 * lib/broker/kv.ts). Follows rooms' heads with
 * `kv.watch` (ten keys per watch) and reports their moves through `onHead`.
 *
 * @example
 * ```ts ignore
 * const kv = await Deno.openKv(":memory:");
 * const store = new KvHistoryStore({ kv });
 * const limits = { size: 100, ttlMs: 60_000 };
 * const { offset } = await store.append("chat", '{"type":"message"}', { limits });
 * await store.close();
 * kv.close();
 * ```
 */
export class KvHistoryStore implements History.HistoryStore {
  readonly kind = "kv";
  readonly #handle: KvHandle;
  readonly #prefix: Deno.KvKey;
  readonly #clock: Clock;
  readonly #watcher: KeyWatcher;
  readonly #queues = new Map<string, Pending[]>();
  readonly #running = new Map<string, Promise<void>>();
  #headHandler: (room: string, position: History.StreamPosition) => void = () => {};
  #retries = 0;
  #closed = false;

  /** @param options the database, key prefix and hooks */
  constructor(options: KvHistoryStoreOptions) {
    const { prefix = ["realtime"], onError = () => {}, clock = systemClock } = options;
    this.#handle = new KvHandle(options, {
      name: "history store",
      onError,
      onRetry: () => this.#retries++,
    });
    this.#prefix = prefix;
    this.#clock = clock;
    this.#watcher = new KeyWatcher(this.#handle.kv, { onError });
    this.#watcher.onChange((room, value) => {
      if (isHead(value) && value.expiresAt > this.#clock.now()) {
        this.#headHandler(room, { offset: value.offset, epoch: value.epoch });
      }
    });
  }

  /** Database errors that a retry cured since start (e.g. `database is locked`). */
  get retries(): number {
    return this.#retries;
  }

  /** Rooms whose head is watched. */
  get followed(): number {
    return this.#watcher.size;
  }

  onHead(handler: (room: string, position: History.StreamPosition) => void): void {
    this.#headHandler = handler;
  }

  follow(room: string): void {
    if (!this.#closed) this.#watcher.add(room, this.#key(room, "head"));
  }

  unfollow(room: string): void {
    this.#watcher.remove(room);
  }

  append(
    room: string,
    frame: string,
    options: History.AppendOptions,
  ): Promise<History.AppendResult> {
    const { limits, dedupe } = options;
    try {
      checkLimits(limits);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#closed) {
      return Promise.reject(new StoreUnavailableError("history store is closed"));
    }
    return new Promise((resolve, reject) => {
      let queue = this.#queues.get(room);
      if (queue === undefined) {
        queue = [];
        this.#queues.set(room, queue);
      }
      if (queue.length >= MAX_QUEUED) {
        reject(new StoreUnavailableError(`too many appends waiting for ${room}`, 1000));
        return;
      }
      queue.push({ frame, limits, dedupe, resolve, reject });
      this.#kick(room);
    });
  }

  async position(room: string, limits: History.HistoryLimits): Promise<History.StreamPosition> {
    checkLimits(limits);
    const head = await this.#handle.run(
      "read a stream position",
      (kv) => this.#ensureHead(kv, room, limits),
    );
    return { offset: head.offset, epoch: head.epoch };
  }

  async read(room: string, options: History.ReadOptions): Promise<History.ReadResult> {
    const { after, before, limit, limits } = options;
    checkLimits(limits);
    checkReadLimit(limit);
    return await this.#handle.run("read history", async (kv) => {
      const head = await this.#ensureHead(kv, room, limits);
      if (head === CONFLICT) return CONFLICT;
      const position = { offset: head.offset, epoch: head.epoch };
      const now = this.#clock.now();
      const lowest = Math.max(1, head.offset - limits.size + 1);
      const oldest = head.offset === 0
        ? 0
        : await this.#oldest(kv, room, head, lowest, limits, now);
      if (oldest === 0 || limit === 0) return { entries: [], position, oldest };
      const from = Math.max(oldest, (after ?? 0) + 1);
      const to = Math.min(head.offset, (before ?? Infinity) - 1);
      if (from > to) return { entries: [], position, oldest };
      const stored = await this.#list(kv, room, head.epoch, from, to, limit, after === undefined);
      const entries: History.HistoryEntry[] = [];
      for (const [offset, value] of stored) {
        if (!fresh(value, limits, now)) continue;
        entries.push({ offset, frame: await this.#frame(kv, room, head.epoch, offset, value) });
      }
      return { entries, position, oldest };
    });
  }

  health(): StoreHealth {
    return this.#handle.health();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const queue of this.#queues.values()) {
      for (const pending of queue.splice(0)) {
        pending.reject(new StoreUnavailableError("history store is closed"));
      }
    }
    this.#queues.clear();
    await this.#watcher.close();
    // Stops batches under way from retrying, waits for them, then releases the database.
    await this.#handle.close();
    await Promise.allSettled(this.#running.values());
  }

  #key(room: string, ...rest: Deno.KvKeyPart[]): Deno.KvKey {
    return [...this.#prefix, "history", room, ...rest];
  }

  /** Runs the room's next batch unless one is in flight. */
  #kick(room: string): void {
    if (this.#running.has(room)) return;
    const queue = this.#queues.get(room);
    if (queue === undefined || queue.length === 0) {
      this.#queues.delete(room);
      return;
    }
    const batch: Pending[] = [];
    let bytes = 0;
    const dedupeKeys = new Set<string>();
    while (queue.length > 0 && batch.length < MAX_BATCH) {
      const next = queue[0]!;
      const size = next.frame.length * 2;
      if (batch.length > 0 && bytes + size > MAX_BATCH_BYTES) break;
      if (next.dedupe !== undefined && !dedupeKeys.has(next.dedupe.key)) {
        if (dedupeKeys.size >= MAX_BATCH_DEDUPE) break;
        dedupeKeys.add(next.dedupe.key);
      }
      batch.push(queue.shift()!);
      bytes += size;
    }
    const run = this.#commitBatch(room, batch).then(
      (results) => batch.forEach((pending, i) => pending.resolve(results[i]!)),
      (err) => batch.forEach((pending) => pending.reject(err)),
    ).finally(() => {
      this.#running.delete(room);
      this.#kick(room);
    });
    this.#running.set(room, run);
  }

  /** Stores a batch of appends in one commit; one result per append, in order. */
  async #commitBatch(room: string, batch: Pending[]): Promise<History.AppendResult[]> {
    const dedupeParts = new Map<string, string>();
    for (const { dedupe } of batch) {
      if (dedupe !== undefined && !dedupeParts.has(dedupe.key)) {
        dedupeParts.set(dedupe.key, await keyPart(dedupe.key));
      }
    }
    const dedupeKeys = [...dedupeParts.keys()];
    const limits = batch[batch.length - 1]!.limits;
    return await this.#handle.run("append to history", async (kv) => {
      const headKey = this.#key(room, "head");
      const found = await getAll(kv, [
        headKey,
        ...dedupeKeys.map((key) => this.#key(room, "d", dedupeParts.get(key)!)),
      ]);
      const now = this.#clock.now();
      const headEntry = found[0]!;
      const head = validHead(headEntry.value, now) ?? {
        epoch: newEpoch(),
        offset: 0,
        expiresAt: 0,
      };
      const seen = new Map<string, DedupeRecord>();
      dedupeKeys.forEach((key, i) => {
        const value = found[i + 1]!.value;
        if (isDedupe(value) && value.expiresAt > now) seen.set(key, value);
      });
      const atomic = kv.atomic().check({
        key: headKey,
        versionstamp: headEntry.versionstamp,
      });
      dedupeKeys.forEach((_key, i) => {
        atomic.check({ key: found[i + 1]!.key, versionstamp: found[i + 1]!.versionstamp });
      });
      let top = head.offset;
      const results: History.AppendResult[] = [];
      const assigned = new Map<string, DedupeRecord>();
      for (const { frame, limits: own, dedupe } of batch) {
        const earlier = dedupe === undefined
          ? undefined
          : seen.get(dedupe.key) ?? assigned.get(dedupe.key);
        if (earlier !== undefined) {
          results.push({ offset: earlier.offset, epoch: earlier.epoch, duplicate: true });
          continue;
        }
        const offset = ++top;
        this.#putEntry(atomic, room, head.epoch, offset, frame, own, now);
        const trimmed = offset - own.size;
        if (trimmed >= 1) atomic.delete(this.#key(room, "m", head.epoch, trimmed));
        if (dedupe !== undefined) {
          const record = { offset, epoch: head.epoch, expiresAt: now + dedupe.windowMs };
          assigned.set(dedupe.key, record);
          atomic.set(this.#key(room, "d", dedupeParts.get(dedupe.key)!), record, {
            expireIn: dedupe.windowMs,
          });
        }
        results.push({ offset, epoch: head.epoch, duplicate: false });
      }
      if (top === head.offset && headEntry.versionstamp !== null) return results;
      const headTtl = limits.ttlMs * 2;
      atomic.set(headKey, { epoch: head.epoch, offset: top, expiresAt: now + headTtl }, {
        expireIn: headTtl,
      });
      const committed = await atomic.commit();
      return committed.ok ? results : CONFLICT;
    });
  }

  #putEntry(
    atomic: Deno.AtomicOperation,
    room: string,
    epoch: string,
    offset: number,
    frame: string,
    limits: History.HistoryLimits,
    now: number,
  ): void {
    const expireIn = limits.ttlMs;
    const base = { at: now, exp: now + limits.ttlMs };
    if (frame.length <= MAX_INLINE_CHARS) {
      atomic.set(this.#key(room, "m", epoch, offset), { ...base, frame, parts: 1 }, { expireIn });
      return;
    }
    const bytes = encoder.encode(frame);
    const parts = Math.ceil(bytes.length / PART_BYTES);
    atomic.set(
      this.#key(room, "m", epoch, offset),
      { ...base, bytes: bytes.slice(0, PART_BYTES), parts },
      { expireIn },
    );
    for (let i = 1; i < parts; i++) {
      atomic.set(
        this.#key(room, "x", epoch, offset, i),
        bytes.slice(i * PART_BYTES, (i + 1) * PART_BYTES),
        { expireIn },
      );
    }
  }

  async #frame(
    kv: Deno.Kv,
    room: string,
    epoch: string,
    offset: number,
    value: StoredEntry,
  ): Promise<string> {
    if (value.frame !== undefined) return value.frame;
    const chunks = [value.bytes ?? new Uint8Array()];
    const keys = Array.from(
      { length: value.parts - 1 },
      (_, i) => this.#key(room, "x", epoch, offset, i + 1),
    );
    for (const part of await getAll(kv, keys)) {
      if (!(part.value instanceof Uint8Array)) {
        throw new StoreUnavailableError(`history entry ${offset} of ${room} is incomplete`);
      }
      chunks.push(part.value);
    }
    const whole = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const chunk of chunks) {
      whole.set(chunk, at);
      at += chunk.length;
    }
    return decoder.decode(whole);
  }

  /** The head, created (with a fresh epoch) when the room has none or it expired. */
  async #ensureHead(
    kv: Deno.Kv,
    room: string,
    limits: History.HistoryLimits,
  ): Promise<Head | typeof CONFLICT> {
    const key = this.#key(room, "head");
    const entry = await kv.get(key);
    const now = this.#clock.now();
    const head = validHead(entry.value, now);
    if (head !== undefined) return head;
    const headTtl = limits.ttlMs * 2;
    const created: Head = { epoch: newEpoch(), offset: 0, expiresAt: now + headTtl };
    const committed = await kv.atomic().check(entry).set(key, created, {
      expireIn: headTtl,
    }).commit();
    return committed.ok ? created : CONFLICT;
  }

  /** Offset of the oldest entry still kept at or above `lowest`, 0 when none is. */
  async #oldest(
    kv: Deno.Kv,
    room: string,
    head: Head,
    lowest: number,
    limits: History.HistoryLimits,
    now: number,
  ): Promise<number> {
    // Expired entries form a prefix (they were stored in offset order) that
    // KV may not have deleted yet: the first fresh one is the oldest kept.
    const iter = kv.list<StoredEntry>({
      start: this.#key(room, "m", head.epoch, lowest),
      end: this.#key(room, "m", head.epoch, head.offset + 1),
    }, { batchSize: 64 });
    for await (const { key, value } of iter) {
      if (isStored(value) && fresh(value, limits, now)) return key[key.length - 1] as number;
    }
    return 0;
  }

  /** Stored entries from..to (inclusive), at most `limit`: the oldest ones, or the newest when `newest`. */
  async #list(
    kv: Deno.Kv,
    room: string,
    epoch: string,
    from: number,
    to: number,
    limit: number,
    newest: boolean,
  ): Promise<Array<[number, StoredEntry]>> {
    const out: Array<[number, StoredEntry]> = [];
    const iter = kv.list<StoredEntry>({
      start: this.#key(room, "m", epoch, from),
      end: this.#key(room, "m", epoch, to + 1),
    }, { limit, reverse: newest, batchSize: Math.min(limit, LIST_BATCH) });
    for await (const { key, value } of iter) {
      if (isStored(value)) out.push([key[key.length - 1] as number, value]);
    }
    if (newest) out.reverse();
    return out;
  }
}
