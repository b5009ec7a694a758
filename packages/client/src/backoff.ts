/**
 * When and how soon to reconnect: capped exponential back-off with full
 * jitter, the streak of attempts that failed before `welcome`, and which
 * close codes end the client instead.
 *
 * @module
 */
import { CLOSE_FORBIDDEN, CLOSE_NORMAL, CLOSE_TOKEN_EXPIRED } from "./codes.ts";

/** Reconnect back-off; see {@linkcode backoffDelay}. */
export interface ReconnectOptions {
  /**
   * Ceiling of the first retry's delay.
   * @default {500}
   */
  initialDelayMs?: number;
  /**
   * Largest delay ceiling, however many attempts failed.
   * @default {30000}
   */
  maxDelayMs?: number;
  /**
   * Growth of the delay ceiling per failed attempt.
   * @default {2}
   */
  factor?: number;
  /**
   * Full jitter: wait a uniformly random time between 0 and the ceiling, so
   * that clients dropped together by a restart do not come back together.
   * @default {true}
   */
  jitter?: boolean;
  /**
   * Consecutive attempts failing before `welcome` after which an `"error"`
   * with code `handshake_failed` is emitted (once per streak). A browser sees
   * a refused handshake (HTTP 401) only as close code 1006, so a streak is the
   * only hint that the credentials are being refused.
   * @default {3}
   */
  handshakeFailureLimit?: number;
}

/**
 * The delay before reconnect attempt `attempt` (1-based): exponential growth
 * from `initialDelayMs` by `factor`, capped at `maxDelayMs`, then, with
 * jitter, a uniformly random point between 0 and that ceiling ("full jitter").
 *
 * @example
 * ```ts
 * import { backoffDelay } from "./client.ts";
 * const ceiling = backoffDelay(4, { initialDelayMs: 100, jitter: false }); // 800
 * ```
 *
 * @param attempt how many attempts have failed in a row, from 1
 * @param options back-off settings
 * @param random uniform source in [0, 1)
 * @returns milliseconds to wait
 */
export function backoffDelay(
  attempt: number,
  options: ReconnectOptions = {},
  random: () => number = Math.random,
): number {
  const { initialDelayMs = 500, maxDelayMs = 30_000, factor = 2, jitter = true } = options;
  const exponent = Math.max(0, attempt - 1);
  const ceiling = Math.min(maxDelayMs, initialDelayMs * factor ** exponent);
  return jitter ? Math.floor(random() * ceiling) : ceiling;
}

/**
 * Whether a socket closed with `code` may be followed by a reconnect. Never
 * after the server's 1000 (it is done with us); after 4401/4403 only when a
 * fresh credential can be fetched (`refreshable`); after anything else, yes.
 */
export function mayReconnectAfter(code: number, refreshable: boolean): boolean {
  if (code === CLOSE_TOKEN_EXPIRED || code === CLOSE_FORBIDDEN) return refreshable;
  // The server closing normally means it is done with us; going away (1001) is not that.
  return code !== CLOSE_NORMAL;
}

/** One reconnect schedule: attempts since the last `welcome` and the pending timer. */
export class Reconnector {
  /** The back-off settings. */
  readonly options: ReconnectOptions;
  #attempt = 0;
  #failuresBeforeWelcome = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** @param options back-off settings */
  constructor(options: ReconnectOptions) {
    this.options = options;
  }

  /**
   * Counts an attempt that ended before `welcome`; returns the streak's limit
   * when this attempt reached it (once per streak), else `undefined`.
   */
  failedBeforeWelcome(): number | undefined {
    const limit = this.options.handshakeFailureLimit ?? 3;
    return ++this.#failuresBeforeWelcome === limit ? limit : undefined;
  }

  /** The next attempt's number (from 1) and the delay before it. */
  next(): { attempt: number; delayMs: number } {
    const attempt = ++this.#attempt;
    return { attempt, delayMs: backoffDelay(attempt, this.options) };
  }

  /** Runs `attempt` after `delayMs`. */
  schedule(delayMs: number, attempt: () => void): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      attempt();
    }, delayMs);
  }

  /** A connection was welcomed: the next failure starts a new streak. */
  reset(): void {
    this.#failuresBeforeWelcome = 0;
    this.#attempt = 0;
  }

  /** Stops a scheduled attempt. */
  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
