/**
 * The webhook queue: events waiting to be delivered to one sink (one URL of
 * one protocol), kept where `STORE` says. One interface; one file per backend
 * (`memory.ts`, `redis.ts`, `kv.ts`), all held to one contract: the cases in
 * `tests/_webhook_queue_contract.ts`, run on each by
 * `tests/webhook_queue_contract_test.ts`.
 *
 * Contract (every backend):
 * - `push` keeps each entry under its id (ids are UUIDv7s, so they sort
 *   oldest first); a sink holds at most `maxEntries`, and past it the oldest
 *   are removed and their ids returned, so a dead receiver cannot grow the queue
 *   without bound.
 * - An entry is due from its push. `claim` hands out at most `max` due
 *   entries, oldest due first, and hides them for `leaseMs`: no other
 *   claim (on any node, for a shared store) gets them while the lease runs,
 *   and any claim gets them again once it lapsed (the claimer died).
 * - `ack` removes entries (delivered, or given up); acking an unknown id is
 *   a no-op. `retry` puts claimed entries back, due at `dueAt`, with the
 *   `attempts` given; an entry acked or dropped meanwhile stays gone.
 * - `depth` is the number of entries a sink holds, due or not.
 * - Time is the store's clock; faults reject with `StoreUnavailableError`.
 *
 * @module
 */
import { z } from "zod";
import type { Backend } from "../types.ts";

/** One queued event. */
export const QueuedEntrySchema = z.strictObject({
  /** The event's id: unique, time-ordered, kept by every retry. */
  id: z.string().min(1).max(64),
  /** When it was first queued, in ms (its retry window starts here). */
  queuedAt: z.number().int().nonnegative(),
  /** Delivery attempts that failed so far. */
  attempts: z.number().int().nonnegative(),
  /** The event as JSON text, as the sink's format encodes it. */
  event: z.string(),
});
/** One queued event (see {@linkcode QueuedEntrySchema}). */
export type QueuedEntry = z.infer<typeof QueuedEntrySchema>;

/** Reads a stored entry's JSON; undefined when it is not one (not written by us). */
export function parseQueuedEntry(text: string): QueuedEntry | undefined {
  try {
    const parsed = QueuedEntrySchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Where webhook events wait; see the module doc for the contract. */
export interface WebhookQueue extends Backend {
  /** True when the queue outlives the process and is shared by every node (Redis, KV). */
  readonly durable: boolean;
  /** Most entries one sink holds; past it the oldest make room. */
  readonly maxEntries: number;
  /**
   * Adds entries for `sink`, due at once. Resolves to the ids of the entries
   * removed to stay within `maxEntries` (oldest first), which the caller
   * counts and audits.
   *
   * @throws {StoreUnavailableError}
   */
  push(sink: string, entries: readonly QueuedEntry[]): Promise<string[]>;
  /**
   * Takes up to `max` due entries of `sink`, oldest due first, hidden from
   * other claims for `leaseMs`.
   *
   * @throws {StoreUnavailableError}
   */
  claim(sink: string, max: number, leaseMs: number): Promise<QueuedEntry[]>;
  /**
   * Removes entries of `sink` by id.
   *
   * @throws {StoreUnavailableError}
   */
  ack(sink: string, ids: readonly string[]): Promise<void>;
  /**
   * Puts claimed entries back (with their new `attempts`), due at `dueAt`;
   * entries no longer held stay gone.
   *
   * @throws {StoreUnavailableError}
   */
  retry(sink: string, entries: readonly QueuedEntry[], dueAt: number): Promise<void>;
  /**
   * How many entries `sink` holds.
   *
   * @throws {StoreUnavailableError}
   */
  depth(sink: string): Promise<number>;
}

/** Checks a queue's bound; the same message for every backend. */
export function checkMaxEntries(maxEntries: number): void {
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new RangeError(
      `Cannot create webhook queue: maxEntries must be a positive integer, current value is ${maxEntries}`,
    );
  }
}
