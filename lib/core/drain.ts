/**
 * Waiting for a socket's backlog to drain. Deno's WebSocket has no `drain`
 * event, but its `bufferedAmount` is live (the bytes not yet handed to the
 * network), so a writer with much to send polls it: quickly while the reader
 * keeps up, backing off while it does not, and giving up when the reader has
 * taken nothing for a while or too much is waiting for it.
 *
 * @module
 */
import type { Clock, TimerId } from "../clock.ts";

/** The longest pause between two reads of the backlog. */
export const DRAIN_POLL_MAX_MS = 50;

/** Options for {@linkcode waitForDrain}. */
export interface DrainOptions {
  /** The socket's backlog now (`bufferedAmount`). */
  buffered(): number;
  /** Other bytes waiting for the same reader (live frames queued behind a replay). */
  held(): number;
  /** Done once `buffered()` is at most this. */
  mark: number;
  /** Over the limit once `buffered() + held()` passes this. */
  limit: number;
  /** Stalled once the backlog has not shrunk for this long. */
  stallMs: number;
  clock: Clock;
  /** Ends the wait (`aborted`) and its timer. */
  signal: AbortSignal;
}

/** How a wait ended, and the bytes unread (`buffered() + held()`) at the end. */
export interface DrainOutcome {
  result: "drained" | "over_limit" | "stalled" | "aborted";
  unread: number;
}

/**
 * Polls the backlog until it is at most `mark` (`drained`), the reader has
 * more than `limit` unread (`over_limit`), the backlog stops shrinking for
 * `stallMs` (`stalled`), or `signal` aborts.
 *
 * @example
 * ```ts ignore
 * const { result } = await waitForDrain({
 *   buffered: () => ws.bufferedAmount, held: () => 0,
 *   mark: 1 << 20, limit: 4 << 20, stallMs: 30_000, clock, signal,
 * });
 * ```
 */
export async function waitForDrain(options: DrainOptions): Promise<DrainOutcome> {
  const { clock, signal } = options;
  let lowest = Infinity;
  let progressAt = clock.now();
  let delayMs = 1;
  while (!signal.aborted) {
    const buffered = options.buffered();
    const unread = buffered + options.held();
    if (unread > options.limit) return { result: "over_limit", unread };
    if (buffered <= options.mark) return { result: "drained", unread };
    if (buffered < lowest) {
      lowest = buffered;
      progressAt = clock.now();
      delayMs = 1;
    } else if (clock.now() - progressAt >= options.stallMs) {
      return { result: "stalled", unread };
    }
    await sleep(clock, delayMs, signal);
    delayMs = Math.min(delayMs * 2, DRAIN_POLL_MAX_MS);
  }
  return { result: "aborted", unread: 0 };
}

/** Resolves after `ms`, or at once when `signal` aborts (clearing the timer). */
function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      signal.removeEventListener("abort", done);
      clock.clearTimeout(timer);
      resolve();
    };
    const timer: TimerId = clock.setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
