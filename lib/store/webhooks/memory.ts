/**
 * The webhook queue in this isolate's memory (`STORE=memory`): nothing is
 * shared with other isolates or nodes, and a restart loses what was queued
 * (the README says so). Bounded per sink by `maxEntries`.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import type { StoreHealth } from "../types.ts";
import { checkMaxEntries, type QueuedEntry, type WebhookQueue } from "./types.ts";

/** Options for {@linkcode MemoryWebhookQueue}. */
export interface MemoryWebhookQueueOptions {
  /** Most entries one sink holds. @default 100_000 */
  maxEntries?: number;
  /** @default systemClock */
  clock?: Clock;
}

interface Held {
  entry: QueuedEntry;
  /** When it may be claimed (its push, its retry, or the end of its lease). */
  due: number;
}

interface SinkQueue {
  /** By id, in push order (oldest first). */
  held: Map<string, Held>;
  /** No entry is due before this (a lower bound), so polls of a waiting queue scan nothing. */
  nextDue: number;
}

/**
 * The per-isolate {@linkcode WebhookQueue}.
 *
 * @example
 * ```ts
 * import { MemoryWebhookQueue } from "./memory.ts";
 * const queue = new MemoryWebhookQueue({ maxEntries: 1000 });
 * await queue.push("sink", [{ id: "e1", queuedAt: Date.now(), attempts: 0, event: "{}" }]);
 * const [entry] = await queue.claim("sink", 100, 10_000);
 * await queue.ack("sink", [entry!.id]);
 * ```
 */
export class MemoryWebhookQueue implements WebhookQueue {
  readonly kind = "memory";
  readonly durable = false;
  readonly maxEntries: number;
  readonly #clock: Clock;
  readonly #sinks = new Map<string, SinkQueue>();

  /** @param options bound and clock */
  constructor(options: MemoryWebhookQueueOptions = {}) {
    const { maxEntries = 100_000, clock = systemClock } = options;
    checkMaxEntries(maxEntries);
    this.maxEntries = maxEntries;
    this.#clock = clock;
  }

  push(sink: string, entries: readonly QueuedEntry[]): Promise<string[]> {
    const queue = this.#sink(sink);
    const now = this.#clock.now();
    for (const entry of entries) queue.held.set(entry.id, { entry: { ...entry }, due: now });
    queue.nextDue = Math.min(queue.nextDue, now);
    const dropped: string[] = [];
    for (const id of queue.held.keys()) {
      if (queue.held.size <= this.maxEntries) break;
      queue.held.delete(id);
      dropped.push(id);
    }
    return Promise.resolve(dropped);
  }

  claim(sink: string, max: number, leaseMs: number): Promise<QueuedEntry[]> {
    const queue = this.#sinks.get(sink);
    const now = this.#clock.now();
    if (queue === undefined || queue.nextDue > now) return Promise.resolve([]);
    const due: Held[] = [];
    let nextDue = Infinity;
    for (const held of queue.held.values()) {
      if (held.due <= now) due.push(held);
      else nextDue = Math.min(nextDue, held.due);
    }
    due.sort((a, b) => a.due - b.due || (a.entry.id < b.entry.id ? -1 : 1));
    const taken = due.slice(0, max);
    for (const held of taken) held.due = now + leaseMs;
    for (const held of due.slice(max)) nextDue = Math.min(nextDue, held.due);
    queue.nextDue = Math.min(nextDue, now + leaseMs);
    return Promise.resolve(taken.map((held) => ({ ...held.entry })));
  }

  ack(sink: string, ids: readonly string[]): Promise<void> {
    const queue = this.#sinks.get(sink);
    if (queue !== undefined) {
      for (const id of ids) queue.held.delete(id);
      if (queue.held.size === 0) this.#sinks.delete(sink);
    }
    return Promise.resolve();
  }

  retry(sink: string, entries: readonly QueuedEntry[], dueAt: number): Promise<void> {
    const queue = this.#sinks.get(sink);
    if (queue === undefined) return Promise.resolve();
    for (const entry of entries) {
      const held = queue.held.get(entry.id);
      if (held === undefined) continue;
      held.entry = { ...entry };
      held.due = dueAt;
      queue.nextDue = Math.min(queue.nextDue, dueAt);
    }
    return Promise.resolve();
  }

  depth(sink: string): Promise<number> {
    return Promise.resolve(this.#sinks.get(sink)?.held.size ?? 0);
  }

  health(): StoreHealth {
    return { status: "ok", transport: "memory" };
  }

  close(): Promise<void> {
    this.#sinks.clear();
    return Promise.resolve();
  }

  #sink(sink: string): SinkQueue {
    let queue = this.#sinks.get(sink);
    if (queue === undefined) {
      queue = { held: new Map(), nextDue: Infinity };
      this.#sinks.set(sink, queue);
    }
    return queue;
  }
}
