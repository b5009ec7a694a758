/**
 * The webhook delivery engine, one for every protocol: events are given to
 * {@linkcode WebhookEngine.emit}, which never waits; they reach the
 * {@linkcode WebhookQueue} in the background (where `STORE` keeps them), and
 * each sink's poller claims due events in batches, POSTs them, and acks,
 * schedules a retry (back-off with jitter, `Retry-After` honoured) or drops
 * them with an audit record. With a shared queue (Redis, KV) a claim is a
 * lease: each event is delivered by one node, and the events of a node that
 * died come due again when its lease lapses.
 *
 * Delivery is at least once: a retry, or a node that died after the
 * receiver answered but before its ack, sends an event again with the same
 * `id`, on which receivers deduplicate.
 *
 * @module
 */
import type { AuditSink } from "../audit.ts";
import type { Clock, TimerId } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { errorMessage } from "../errors.ts";
import type { QueuedEntry, WebhookQueue } from "../store/webhooks/types.ts";
import { type DeliveryResult, postBatch } from "./delivery.ts";
import { newEventId, type WebhookEvent, WebhookEventSchema } from "./events.ts";
import type { RetryPolicy, WebhookSink } from "./sinks.ts";

/** Options for {@linkcode WebhookEngine}. */
export interface WebhookEngineOptions {
  /** Where events wait (memory, Redis or KV); closed by the caller. */
  queue: WebhookQueue;
  /** The receivers. */
  sinks: readonly WebhookSink[];
  /** `WEBHOOK_TIMEOUT_MS`: deadline of one POST, answer included. @default 5000 */
  timeoutMs?: number;
  /**
   * How long a claimed batch is hidden from other claims: longer than one
   * POST plus the queue's own calls. A node that dies holding a batch delays
   * it by at most this. @default timeoutMs + 2000
   */
  leaseMs?: number;
  /** Batches in flight per sink on this node. @default 2 */
  concurrency?: number;
  /** @default systemClock */
  clock?: Clock;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Where drops (retry window over, rejected, queue full) are recorded. */
  audit?: AuditSink;
  /** Told when the queue fails (the caller reports it). */
  onError?: (error: Error) => void;
  /** Jitter source in [0, 1). @default Math.random */
  random?: () => number;
  /**
   * Largest event accepted, as JSON characters; a larger one (a
   * `message_published` of a huge payload) is dropped and audited, so that
   * every queue backend can hold what it is given. @default 262_144
   */
  maxEventChars?: number;
}

/** What `/metrics` and the admin page show. */
export interface WebhookStats {
  /** Events delivered (a 2xx answer). */
  sent: number;
  /** Attempts (batches) that failed: network error, timeout, or a non-2xx answer. */
  failed: number;
  /** Events scheduled for another attempt. */
  retried: number;
  /** Events given up: retry window over, rejected by the receiver, or pushed out of a full queue. */
  dropped: number;
  /** Events queued for every sink, as last read from the queue, plus those not yet handed to it. */
  depth: number;
}

interface SinkState {
  readonly sink: WebhookSink;
  /** Events emitted here and not yet handed to the queue. */
  outbox: QueuedEntry[];
  /** Batches in flight. */
  inFlight: number;
  /** A claim loop is running. */
  pumping: boolean;
  /** Last depth read from the queue. */
  depth: number;
}

/**
 * The delivery engine.
 *
 * @example
 * ```ts ignore
 * import { MemoryWebhookQueue } from "../store/webhooks/memory.ts";
 * import { nativeSink } from "./sinks.ts";
 * const queue = new MemoryWebhookQueue();
 * const engine = new WebhookEngine({
 *   queue,
 *   sinks: [nativeSink({ url: "https://app.example/hooks", secret, events: ["room_vacated"] })],
 * });
 * engine.emit({ name: "room_vacated", room: "lobby" }); // never waits
 * await engine.close();
 * await queue.close();
 * ```
 */
export class WebhookEngine {
  readonly #queue: WebhookQueue;
  readonly #sinks: SinkState[];
  readonly #timeoutMs: number;
  readonly #leaseMs: number;
  readonly #concurrency: number;
  readonly #clock: Clock;
  readonly #fetch: typeof fetch;
  readonly #audit: AuditSink | undefined;
  readonly #onError: (error: Error) => void;
  readonly #random: () => number;
  readonly #maxEventChars: number;
  readonly #closing = new AbortController();
  readonly #running = new Set<Promise<void>>();
  readonly #stats = { sent: 0, failed: 0, retried: 0, dropped: 0 };
  readonly #poller: TimerId;
  #flushing: Promise<void> | undefined;
  #closed = false;

  /** @param options queue, sinks, timings and hooks; polling starts at once */
  constructor(options: WebhookEngineOptions) {
    const { timeoutMs = 5000, concurrency = 2, clock = systemClock } = options;
    this.#queue = options.queue;
    this.#sinks = options.sinks.map((sink) => ({
      sink,
      outbox: [],
      inFlight: 0,
      pumping: false,
      depth: 0,
    }));
    this.#timeoutMs = timeoutMs;
    this.#leaseMs = options.leaseMs ?? timeoutMs + 2000;
    this.#concurrency = concurrency;
    this.#clock = clock;
    this.#fetch = options.fetch ?? fetch;
    this.#audit = options.audit;
    this.#onError = options.onError ?? (() => {});
    this.#random = options.random ?? Math.random;
    this.#maxEventChars = options.maxEventChars ?? 262_144;
    const pollMs = Math.min(1000, ...options.sinks.map((s) => s.maxWaitMs));
    this.#poller = clock.setInterval(() => this.#pollAll(), pollMs);
  }

  /** Whether any sink is configured (no sink: `emit` is a no-op). */
  get active(): boolean {
    return this.#sinks.length > 0;
  }

  /**
   * Whether any sink takes events named `name` (lets callers skip building
   * an event). Asked by name only: a sink that also filters on other fields
   * (a Pusher sink's app) may still refuse a given event.
   */
  wants(name: string): boolean {
    return this.#sinks.some((s) => s.sink.accepts({ id: "", name, time_ms: 0 }));
  }

  /**
   * Queues an event for every sink that takes it, with a new unique `id`
   * and `time_ms` (now). Returns at once; the event reaches the queue in the
   * background (a failing queue is tried again at each poll, and meanwhile
   * at most `maxEntries` events per sink wait here, oldest dropped first).
   */
  emit(fields: { name: string } & Record<string, unknown>): void {
    if (this.#closed || this.#sinks.length === 0) return;
    const now = this.#clock.now();
    const event = { ...fields, id: newEventId(now), time_ms: now };
    let text: string | undefined;
    for (const state of this.#sinks) {
      if (!state.sink.accepts(event)) continue;
      text ??= JSON.stringify(event);
      if (text.length > this.#maxEventChars) {
        this.#drop(state, [event.id], `event over ${this.#maxEventChars} characters`);
        continue;
      }
      state.outbox.push({ id: event.id, queuedAt: now, attempts: 0, event: text });
      // The queue is unreachable and the outbox grew to the queue's bound: oldest out.
      if (state.outbox.length > this.#queue.maxEntries) {
        this.#drop(state, [state.outbox.shift()!.id], "queue full");
      }
    }
    if (text !== undefined) this.#scheduleFlush();
  }

  /** Counters and the queue's depth. */
  stats(): WebhookStats {
    let depth = 0;
    for (const state of this.#sinks) depth += state.depth + state.outbox.length;
    return { ...this.#stats, depth };
  }

  /** Resolves once every event emitted so far is in the queue (or was dropped). */
  async flush(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing;
  }

  /**
   * Hands what was emitted to the queue, stops polling, aborts the POSTs in
   * flight (their events stay queued: with a shared queue another node or
   * the next start sends them when their lease lapses) and waits for them.
   * Idempotent. The queue itself is the caller's to close.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#clock.clearInterval(this.#poller);
    await this.flush();
    for (const state of this.#sinks) {
      // The queue was unreachable at the last flush: these are lost, and said so.
      if (state.outbox.length > 0) {
        this.#drop(state, state.outbox.map((e) => e.id), "closing with the queue unreachable");
      }
      state.outbox = [];
    }
    this.#closing.abort();
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  #scheduleFlush(): void {
    if (this.#flushing !== undefined) return;
    this.#flushing = Promise.resolve().then(() => this.#flushOutboxes()).then((ok) => {
      this.#flushing = undefined;
      // Emitted meanwhile: flush again. After a failure the next poll tries again.
      if (ok && this.#sinks.some((s) => s.outbox.length > 0)) this.#scheduleFlush();
    });
  }

  /** Hands every outbox to the queue; false when the queue failed (the rest waits for a poll). */
  async #flushOutboxes(): Promise<boolean> {
    for (const state of this.#sinks) {
      if (state.outbox.length === 0) continue;
      const entries = state.outbox;
      state.outbox = [];
      try {
        const dropped = await this.#queue.push(state.sink.id, entries);
        state.depth += entries.length - dropped.length;
        if (dropped.length > 0) this.#drop(state, dropped, "queue full");
      } catch (err) {
        // Kept, in order, for the next try (still bounded by `emit`).
        state.outbox = entries.concat(state.outbox);
        this.#fail(err);
        return false;
      }
      // A full batch is ready: no need to wait for the next poll.
      if (entries.length >= state.sink.maxBatch) this.#pump(state);
    }
    return true;
  }

  #pollAll(): void {
    if (this.#sinks.some((s) => s.outbox.length > 0)) this.#scheduleFlush();
    for (const state of this.#sinks) this.#pump(state);
  }

  /** Claims and sends batches of one sink while there are due events and room in flight. */
  #pump(state: SinkState): void {
    if (this.#closed || state.pumping || state.inFlight >= this.#concurrency) return;
    state.pumping = true;
    this.#track(this.#claimLoop(state).finally(() => state.pumping = false));
  }

  async #claimLoop(state: SinkState): Promise<void> {
    const { sink } = state;
    try {
      state.depth = await this.#queue.depth(sink.id);
      while (!this.#closed && state.inFlight < this.#concurrency) {
        const entries = await this.#queue.claim(sink.id, sink.maxBatch, this.#leaseMs);
        if (entries.length === 0 || this.#closed) return;
        state.inFlight++;
        this.#track(this.#send(state, entries).finally(() => state.inFlight--));
        if (entries.length < sink.maxBatch) return;
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  async #send(state: SinkState, entries: QueuedEntry[]): Promise<void> {
    const { sink } = state;
    const events: WebhookEvent[] = [];
    const good: QueuedEntry[] = [];
    const bad: QueuedEntry[] = [];
    for (const entry of entries) {
      const event = parseEvent(entry.event);
      if (event === undefined) bad.push(entry);
      else (events.push(event), good.push(entry));
    }
    try {
      if (bad.length > 0) {
        await this.#giveUp(state, bad, "not an event (written by something else?)");
      }
      if (good.length === 0) return;
      const { body, headers } = sink.encode(events, this.#clock.now());
      const result = await postBatch(sink.url, body, headers, {
        timeoutMs: this.#timeoutMs,
        fetch: this.#fetch,
        signal: this.#closing.signal,
      });
      if (this.#closing.signal.aborted && result.outcome !== "sent") return;
      await this.#settle(state, good, result);
    } catch (err) {
      // The queue failed: the lease lapses and the batch is sent again.
      this.#fail(err);
    }
  }

  async #settle(state: SinkState, entries: QueuedEntry[], result: DeliveryResult): Promise<void> {
    const ids = entries.map((e) => e.id);
    if (result.outcome === "sent") {
      this.#stats.sent += entries.length;
      state.depth = Math.max(0, state.depth - entries.length);
      await this.#queue.ack(state.sink.id, ids);
      return;
    }
    this.#stats.failed++;
    if (result.outcome === "reject") return await this.#giveUp(state, entries, result.detail);
    const now = this.#clock.now();
    const { retry } = state.sink;
    const attempts = (entries[0]?.attempts ?? 0) + 1;
    const delay = Math.max(backoffMs(retry, attempts, this.#random()), result.retryAfterMs ?? 0);
    const again: QueuedEntry[] = [];
    const expired: QueuedEntry[] = [];
    for (const entry of entries) {
      const next = { ...entry, attempts: entry.attempts + 1 };
      (now + delay - entry.queuedAt > retry.forMs ? expired : again).push(next);
    }
    if (expired.length > 0) {
      await this.#giveUp(state, expired, `retried for ${retry.forMs} ms: ${result.detail}`);
    }
    if (again.length === 0) return;
    this.#stats.retried += again.length;
    await this.#queue.retry(state.sink.id, again, now + delay);
  }

  /** Removes entries from the queue for good, counted and audited. */
  async #giveUp(state: SinkState, entries: QueuedEntry[], why: string): Promise<void> {
    const ids = entries.map((e) => e.id);
    this.#drop(state, ids, why);
    state.depth = Math.max(0, state.depth - ids.length);
    await this.#queue.ack(state.sink.id, ids);
  }

  /** Counts and audits events given up (one record per batch, naming its first event). */
  #drop(state: SinkState, ids: readonly string[], why: string): void {
    this.#stats.dropped += ids.length;
    this.#audit?.record("webhook_dropped", {
      sink: state.sink.id,
      url: safeUrl(state.sink.url),
      events: ids.length,
      first: ids[0],
      reason: why,
    });
  }

  #fail(err: unknown): void {
    this.#onError(err instanceof Error ? err : new Error(errorMessage(err)));
  }

  #track(promise: Promise<void>): void {
    const p = promise.catch((err) => this.#fail(err));
    this.#running.add(p);
    void p.finally(() => this.#running.delete(p));
  }
}

/**
 * The delay before attempt `attempts + 1`: `initialMs` doubling per failed
 * attempt, capped at `maxMs`, times a jitter factor in [0.8, 1.2) (so many
 * nodes that failed together do not retry together).
 */
export function backoffMs(policy: RetryPolicy, attempts: number, random: number): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(30, attempts - 1));
  return Math.round(base * (0.8 + 0.4 * random));
}

function parseEvent(text: string): WebhookEvent | undefined {
  try {
    const parsed = WebhookEventSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** A URL fit for the audit log: no credentials, no query (either may hold a secret). */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return "(invalid URL)";
  }
}
