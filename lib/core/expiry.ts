/**
 * A session's token expiry: one timer, re-armed as it fires, first for the
 * `expiring` warning (given once per token), then for the close. Lifetimes
 * longer than setTimeout's range are waited out in steps.
 *
 * @module
 */
import type { Clock, TimerId } from "../clock.ts";

/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What an {@linkcode ExpiryTimer} calls. */
export interface ExpiryHandlers {
  /** The token expires at `exp` (seconds) in at most the warning time. */
  warn(exp: number): void;
  /** The token has expired. */
  expire(): void;
}

/**
 * Watches one token's `exp` at a time.
 *
 * @example
 * ```ts ignore
 * const timer = new ExpiryTimer(clock, 60_000, { warn, expire });
 * timer.watch(principal.expiresAt);
 * ```
 */
export class ExpiryTimer {
  readonly #clock: Clock;
  readonly #warningMs: number;
  readonly #handlers: ExpiryHandlers;
  #timer: TimerId | undefined;
  /** The `exp` a warning was already given for. */
  #warnedFor: number | null = null;

  /**
   * @param clock timers and time
   * @param warningMs how long before `exp` to warn (0: never)
   * @param handlers what to call
   */
  constructor(clock: Clock, warningMs: number, handlers: ExpiryHandlers) {
    this.#clock = clock;
    this.#warningMs = warningMs;
    this.#handlers = handlers;
  }

  /** Watches `exp` (seconds; null: never expires) instead of what it watched. */
  watch(exp: number | null): void {
    this.clear();
    if (exp === null) return;
    const clock = this.#clock;
    const warningMs = this.#warningMs;
    const expMs = exp * 1000;
    const now = clock.now();
    const warnAt = expMs - warningMs;
    if (warningMs > 0 && this.#warnedFor !== exp && now >= warnAt && now < expMs) {
      this.#warnedFor = exp;
      this.#handlers.warn(exp);
    }
    const warnPending = warningMs > 0 && this.#warnedFor !== exp;
    const next = warnPending ? warnAt : expMs;
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      if (clock.now() >= expMs) this.#handlers.expire();
      else this.watch(exp);
    }, Math.max(0, Math.min(next - now, MAX_TIMER_MS)));
  }

  /** Stops watching. */
  clear(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
