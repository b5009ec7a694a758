/**
 * Slow-consumer accounting for one transport: how much has been written
 * since its backlog was last read, and pacing a replay until the reader
 * catches up. A reader that falls too far behind is reported once through
 * `onSlow`; the session closes it.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import { waitForDrain } from "./drain.ts";

/** How many bytes may be written between two reads of the backlog. */
export const BACKLOG_CHECK_BYTES = 16 * 1024;

/** Options for {@linkcode Backlog}. */
export interface BacklogOptions {
  /** The transport's backlog now (bytes written, not yet on the network). */
  buffered(): number;
  /** `MAX_BUFFERED_BYTES`: the most a reader may leave unread. */
  maxBytes: number;
  /** How long a replay waits for a backlog that does not shrink (`HEARTBEAT_MS`). */
  stallMs: number;
  clock: Clock;
  /** Aborted when the session ends: stops a replay's wait. */
  signal: AbortSignal;
  /** The reader is too far behind, with the bytes it left unread. */
  onSlow(unread: number): void;
}

/**
 * Watches one transport's backlog.
 *
 * @example
 * ```ts ignore
 * const backlog = new Backlog({ buffered: () => ws.bufferedAmount, maxBytes, stallMs, clock, signal, onSlow });
 * ws.send(frame);
 * backlog.wrote(frame.length);
 * ```
 */
export class Backlog {
  readonly #options: BacklogOptions;
  /** Bytes written since the backlog was last read. */
  #unchecked = 0;

  /** @param options the transport's backlog, limits and what to call when too far behind */
  constructor(options: BacklogOptions) {
    this.#options = options;
  }

  /**
   * `bytes` were written. The backlog is read once per
   * {@linkcode BACKLOG_CHECK_BYTES} (reading it is a call into the runtime),
   * so it can pass the limit by at most that much (or one frame) before we
   * notice.
   */
  wrote(bytes: number): void {
    this.#unchecked += bytes;
    if (this.#unchecked < BACKLOG_CHECK_BYTES) return;
    this.#unchecked = 0;
    const buffered = this.#options.buffered();
    if (buffered > this.#options.maxBytes) this.#options.onSlow(buffered);
  }

  /**
   * Waits until the backlog is at most a quarter of `maxBytes`: true then,
   * false when the reader is too slow (the backlog plus `held()` passed
   * `maxBytes`, or the backlog did not shrink for `stallMs`; `onSlow` was
   * called) or the wait was aborted.
   */
  async drain(held: () => number): Promise<boolean> {
    const { buffered, maxBytes, stallMs, clock, signal, onSlow } = this.#options;
    const { result, unread } = await waitForDrain({
      buffered,
      held,
      mark: maxBytes / 4,
      limit: maxBytes,
      stallMs,
      clock,
      signal,
    });
    if (result === "drained") return true;
    if (result !== "aborted") onSlow(unread);
    return false;
  }
}
