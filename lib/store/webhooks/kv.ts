/**
 * The webhook queue on Deno KV (`STORE=kv`): shared by every isolate on the
 * database (and every Deno Deploy isolate), kept across restarts. Per sink,
 * under `[…, "webhooks", sink]`:
 * - `["e", id]` → `{queuedAt, attempts, due, parts}`: the entry, and when it
 *   may be claimed (its push, its retry, or the end of its lease);
 * - `["p", id, i]` → the event's JSON in parts (a KV value holds 64 KiB; an
 *   event with a `MAX_MESSAGE_BYTES` payload needs several);
 * - `["d", due, id]` → `true`: the due index claims read, oldest due first;
 * - `["n"]` → how many entries the sink holds (a `Deno.KvU64`), kept in the
 *   same atomic commits as the entries, for the bound.
 *
 * Every change checks the entry's versionstamp, so two isolates never claim
 * one entry: the loser's commit fails and it reads again.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import { CONFLICT, getAll, KvHandle, type KvHandleOptions } from "../_kv.ts";
import type { StoreHealth } from "../types.ts";
import { checkMaxEntries, type QueuedEntry, type WebhookQueue } from "./types.ts";
import { z } from "zod";

/** Options for {@linkcode KvWebhookQueue}. */
export interface KvWebhookQueueOptions extends KvHandleOptions {
  /** @default {["realtime"]} */
  prefix?: Deno.KvKey;
  /** Most entries one sink holds. @default 100_000 */
  maxEntries?: number;
  /** @default systemClock */
  clock?: Clock;
  /** Told of each operation that gave up (the database is unavailable). */
  onError?: (error: Error) => void;
}

const Meta = z.strictObject({
  queuedAt: z.number(),
  attempts: z.number().int().nonnegative(),
  due: z.number(),
  parts: z.number().int().positive(),
});
type Meta = z.infer<typeof Meta>;

/** Characters per event part: at most 2 bytes each in a KV value, under its 64 KiB. */
const PART_CHARS = 30_000;
/** Characters of event text per atomic commit (KV allows 800 KiB of mutations). */
const COMMIT_CHARS = 200_000;
/** Entries per atomic commit (KV allows 100 checks and 1,000 mutations). */
const COMMIT_ENTRIES = 40;

/**
 * The shared {@linkcode WebhookQueue} on Deno KV.
 *
 * @example
 * ```ts ignore
 * const queue = new KvWebhookQueue({ kv: await Deno.openKv(":memory:") });
 * await queue.push("native:abc", [{ id, queuedAt: Date.now(), attempts: 0, event: "{}" }]);
 * ```
 */
export class KvWebhookQueue implements WebhookQueue {
  readonly kind = "kv";
  readonly durable = true;
  readonly maxEntries: number;
  readonly #handle: KvHandle;
  readonly #prefix: Deno.KvKey;
  readonly #clock: Clock;

  /** @param options the database, prefix, bound and clock */
  constructor(options: KvWebhookQueueOptions) {
    const { prefix = ["realtime"], maxEntries = 100_000, clock = systemClock } = options;
    checkMaxEntries(maxEntries);
    this.#handle = new KvHandle(options, {
      name: "webhook queue",
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    });
    this.maxEntries = maxEntries;
    this.#prefix = prefix;
    this.#clock = clock;
  }

  async push(sink: string, entries: readonly QueuedEntry[]): Promise<string[]> {
    const base = this.#base(sink);
    const now = this.#clock.now();
    for (const group of groups(entries)) {
      await this.#handle.run("queue webhook events", async (kv) => {
        const op = kv.atomic();
        for (const entry of group) write(op, base, entry, now);
        op.sum([...base, "n"], BigInt(group.length));
        // An id already queued (a resend) fails the check: keep the first, queue the rest.
        return (await op.commit()).ok ? true : await this.#pushOneByOne(kv, base, group, now);
      });
    }
    return await this.#trim(base);
  }

  async claim(sink: string, max: number, leaseMs: number): Promise<QueuedEntry[]> {
    const base = this.#base(sink);
    return await this.#handle.run("claim webhook events", async (kv) => {
      const now = this.#clock.now();
      const rows = new Map<string, number>();
      const range = { start: [...base, "d"], end: [...base, "d", now + 1] };
      for await (const { key } of kv.list(range, { limit: max })) {
        const id = String(key.at(-1));
        if (!rows.has(id)) rows.set(id, Number(key.at(-2)));
      }
      if (rows.size === 0) return [];
      const due = [...rows.keys()];
      const metas = await getAll(kv, due.map((id) => [...base, "e", id]));
      const op = kv.atomic();
      const claimed: { id: string; meta: Meta }[] = [];
      let stale = 0;
      metas.forEach((found, i) => {
        const id = due[i]!;
        const meta = Meta.safeParse(found.value);
        const indexDue = rows.get(id)!;
        if (!meta.success || meta.data.due !== indexDue) {
          // An index row its entry no longer names (left by an interrupted change).
          op.delete([...base, "d", indexDue, id]);
          stale++;
        }
        // The index was read before the entry: another isolate may have
        // leased it in between (its versionstamp is then the new one, so the
        // check alone would not notice). Only what is still due is claimed.
        if (!meta.success || meta.data.due > now) return;
        const leased = { ...meta.data, due: now + leaseMs };
        op.check(found).delete([...base, "d", meta.data.due, id]);
        op.set([...base, "d", leased.due, id], true).set(found.key, leased);
        claimed.push({ id, meta: meta.data });
      });
      if (claimed.length === 0 && stale === 0) return [];
      if (!(await op.commit()).ok) return CONFLICT;
      return await this.#read(kv, base, claimed);
    });
  }

  async ack(sink: string, ids: readonly string[]): Promise<void> {
    const base = this.#base(sink);
    for (let i = 0; i < ids.length; i += COMMIT_ENTRIES) {
      const chunk = ids.slice(i, i + COMMIT_ENTRIES);
      await this.#handle.run("remove webhook events", (kv) => this.#remove(kv, base, chunk));
    }
  }

  async retry(sink: string, entries: readonly QueuedEntry[], dueAt: number): Promise<void> {
    const base = this.#base(sink);
    for (let i = 0; i < entries.length; i += COMMIT_ENTRIES) {
      const chunk = entries.slice(i, i + COMMIT_ENTRIES);
      await this.#handle.run("reschedule webhook events", async (kv) => {
        const metas = await getAll(kv, chunk.map((e) => [...base, "e", e.id]));
        const op = kv.atomic();
        metas.forEach((found, j) => {
          const meta = Meta.safeParse(found.value);
          if (!meta.success) return;
          const entry = chunk[j]!;
          op.check(found).delete([...base, "d", meta.data.due, entry.id]);
          op.set([...base, "d", dueAt, entry.id], true);
          op.set(found.key, { ...meta.data, attempts: entry.attempts, due: dueAt });
        });
        return (await op.commit()).ok ? undefined : CONFLICT;
      });
    }
  }

  depth(sink: string): Promise<number> {
    return this.#handle.run("count webhook events", async (kv) => {
      const { value } = await kv.get<Deno.KvU64>([...this.#base(sink), "n"]);
      return value instanceof Deno.KvU64 ? Number(value.value) : 0;
    });
  }

  health(): StoreHealth {
    return this.#handle.health();
  }

  close(): Promise<void> {
    return this.#handle.close();
  }

  #base(sink: string): Deno.KvKey {
    return [...this.#prefix, "webhooks", sink];
  }

  /** After a failed group commit: each entry on its own, skipping ids already queued. */
  async #pushOneByOne(
    kv: Deno.Kv,
    base: Deno.KvKey,
    group: readonly QueuedEntry[],
    now: number,
  ): Promise<true> {
    for (const entry of group) {
      await write(kv.atomic(), base, entry, now).sum([...base, "n"], 1n).commit();
    }
    return true;
  }

  /** Drops the oldest entries past the bound; their ids. */
  async #trim(base: Deno.KvKey): Promise<string[]> {
    const dropped: string[] = [];
    for (;;) {
      const held = await this.#handle.run("count webhook events", async (kv) => {
        const { value } = await kv.get<Deno.KvU64>([...base, "n"]);
        return value instanceof Deno.KvU64 ? Number(value.value) : 0;
      });
      const over = Math.min(COMMIT_ENTRIES, held - this.maxEntries);
      if (over <= 0) return dropped;
      const removed = await this.#handle.run("drop the oldest webhook events", async (kv) => {
        const ids: string[] = [];
        for await (const { key } of kv.list({ prefix: [...base, "e"] }, { limit: over })) {
          ids.push(String(key.at(-1)));
        }
        const result = await this.#remove(kv, base, ids);
        return result === CONFLICT ? CONFLICT : ids;
      });
      dropped.push(...removed);
    }
  }

  /** Removes entries (their parts, due key and count), checking each was not changed meanwhile. */
  async #remove(
    kv: Deno.Kv,
    base: Deno.KvKey,
    ids: readonly string[],
  ): Promise<undefined | typeof CONFLICT> {
    const metas = await getAll(kv, ids.map((id) => [...base, "e", id]));
    const op = kv.atomic();
    let removed = 0;
    metas.forEach((found, i) => {
      const meta = Meta.safeParse(found.value);
      if (!meta.success) return;
      const id = ids[i]!;
      op.check(found).delete(found.key).delete([...base, "d", meta.data.due, id]);
      for (let p = 0; p < meta.data.parts; p++) op.delete([...base, "p", id, p]);
      removed++;
    });
    if (removed === 0) return undefined;
    // KvU64 sums wrap: adding 2^64 − k takes k away.
    op.sum([...base, "n"], 2n ** 64n - BigInt(removed));
    return (await op.commit()).ok ? undefined : CONFLICT;
  }

  /** The claimed entries with their events, joined from their parts. */
  async #read(
    kv: Deno.Kv,
    base: Deno.KvKey,
    claimed: readonly { id: string; meta: Meta }[],
  ): Promise<QueuedEntry[]> {
    const keys = claimed.flatMap(({ id, meta }) =>
      Array.from({ length: meta.parts }, (_, p) => [...base, "p", id, p])
    );
    const parts = await getAll(kv, keys);
    const out: QueuedEntry[] = [];
    let at = 0;
    for (const { id, meta } of claimed) {
      const text = parts.slice(at, at + meta.parts).map((p) => p.value);
      at += meta.parts;
      if (text.some((t) => typeof t !== "string")) continue;
      out.push({ id, queuedAt: meta.queuedAt, attempts: meta.attempts, event: text.join("") });
    }
    return out;
  }
}

/** Adds a new entry (its meta, due key and parts) to `op`, checking its id is not queued. */
function write(
  op: Deno.AtomicOperation,
  base: Deno.KvKey,
  entry: QueuedEntry,
  now: number,
): Deno.AtomicOperation {
  const parts = split(entry.event);
  const meta: Meta = {
    queuedAt: entry.queuedAt,
    attempts: entry.attempts,
    due: now,
    parts: parts.length,
  };
  op.check({ key: [...base, "e", entry.id], versionstamp: null });
  op.set([...base, "e", entry.id], meta).set([...base, "d", now, entry.id], true);
  parts.forEach((part, i) => op.set([...base, "p", entry.id, i], part));
  return op;
}

function split(text: string): string[] {
  const parts: string[] = [];
  for (let i = 0; i < text.length; i += PART_CHARS) parts.push(text.slice(i, i + PART_CHARS));
  return parts.length === 0 ? [""] : parts;
}

/** Entries grouped so that one commit stays within KV's limits. */
function* groups(entries: readonly QueuedEntry[]): Generator<QueuedEntry[]> {
  let group: QueuedEntry[] = [];
  let chars = 0;
  for (const entry of entries) {
    if (
      group.length > 0 &&
      (group.length >= COMMIT_ENTRIES || chars + entry.event.length > COMMIT_CHARS)
    ) {
      yield group;
      group = [];
      chars = 0;
    }
    group.push(entry);
    chars += entry.event.length;
  }
  if (group.length > 0) yield group;
}
