/**
 * Pusher's activity timeout, for every connection of the front door with one
 * timer: a connection silent for the timeout is sent `pusher:ping`, and one
 * that stays silent for as long again is closed with 4201. Anything the
 * client sends counts as activity (a `pusher:pong` included).
 *
 * @module
 */
import type { Clock, TimerId } from "../../clock.ts";

/** A connection the watch looks after. */
export interface Watched {
  /** When the client last sent anything (the clock's milliseconds). */
  readonly lastSeen: number;
  /** Sends `pusher:ping`. */
  ping(): void;
  /** Closes the connection with 4201. */
  timedOut(): void;
}

/** Options for {@linkcode ActivityWatch}. */
export interface ActivityWatchOptions {
  /** Silence before a ping, and again before the close, in milliseconds. */
  timeoutMs: number;
  clock: Clock;
}

/** The activity timeout of every connection; one interval timer while any is watched. */
export class ActivityWatch {
  readonly #timeoutMs: number;
  readonly #clock: Clock;
  /** Each connection, with when it was pinged (0: not since it was last heard). */
  readonly #watched = new Map<Watched, number>();
  #timer: TimerId | undefined;

  /** @param options the timeout and the clock */
  constructor(options: ActivityWatchOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#clock = options.clock;
  }

  /** The timeout, in whole seconds, as `activity_timeout` tells the client. */
  get timeoutSec(): number {
    return Math.max(1, Math.round(this.#timeoutMs / 1000));
  }

  /** Starts watching a connection that has just opened. */
  add(conn: Watched): void {
    this.#watched.set(conn, 0);
    this.#timer ??= this.#clock.setInterval(
      () => this.#tick(),
      Math.max(100, Math.min(this.#timeoutMs / 4, 5000)),
    );
  }

  /** Stops watching a connection (it closed). */
  delete(conn: Watched): void {
    this.#watched.delete(conn);
    if (this.#watched.size === 0) this.#stop();
  }

  /** Stops the timer; connections still watched are forgotten. */
  close(): void {
    this.#watched.clear();
    this.#stop();
  }

  #stop(): void {
    if (this.#timer === undefined) return;
    this.#clock.clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const now = this.#clock.now();
    for (const [conn, pingedAt] of this.#watched) {
      if (now - conn.lastSeen < this.#timeoutMs) {
        if (pingedAt !== 0) this.#watched.set(conn, 0);
        continue;
      }
      if (pingedAt === 0) {
        this.#watched.set(conn, now);
        conn.ping();
      } else if (now - pingedAt >= this.#timeoutMs) {
        this.#watched.delete(conn);
        conn.timedOut();
      }
    }
    if (this.#watched.size === 0) this.#stop();
  }
}
