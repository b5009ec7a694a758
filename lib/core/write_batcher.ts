/**
 * Opt-in write coalescing (`?batch=1`): frames for a batching session are
 * held until the end of the current event-loop turn, then written as one
 * newline-separated frame. One timer serves every session, so a fan-out to
 * N batching members costs one timer, not N.
 *
 * @module
 */

/** Something holding frames to write later. */
export interface Flushable {
  /** Writes what it holds. Must not throw. */
  flush(): void;
}

/**
 * Collects sessions with held frames and flushes them all on the next
 * macrotask: messages fanned out by several frames read in the same turn
 * share one write per member.
 */
export class WriteBatcher {
  #pending = new Set<Flushable>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** Queues a flush of `target` at the end of this turn. */
  schedule(target: Flushable): void {
    this.#pending.add(target);
    this.#timer ??= setTimeout(() => this.flushAll(), 0);
  }

  /** Forgets `target` (it ended or flushed by itself). */
  cancel(target: Flushable): void {
    this.#pending.delete(target);
  }

  /** Flushes everything queued now. */
  flushAll(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const pending = this.#pending;
    this.#pending = new Set();
    for (const target of pending) target.flush();
  }

  /** Flushes what is queued and stops the timer. */
  close(): void {
    this.flushAll();
  }
}
