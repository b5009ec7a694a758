/**
 * One hook's circuit breaker: after `failures` consecutive failures it opens
 * and refuses every call at once for `cooldownMs`; then it lets one call
 * through (half-open), which closes it on success or opens it again on
 * failure. Time comes from the injected clock; no timer is owned.
 *
 * @module
 */
import type { Clock } from "../clock.ts";

/** The breaker's state, as the audit log names it. */
export type BreakerState = "closed" | "open" | "half_open";

/** Options for {@linkcode CircuitBreaker}. */
export interface BreakerOptions {
  /** Consecutive failures that open the breaker (`HOOK_BREAKER_FAILURES`). */
  failures: number;
  /** How long it stays open, in ms (`HOOK_BREAKER_COOLDOWN_MS`). */
  cooldownMs: number;
  clock: Clock;
  /** Told of every change of state (audited by the caller). */
  onChange?: (state: BreakerState) => void;
}

/**
 * Counts consecutive failures and decides whether a call may go out.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "./breaker.ts";
 * import { systemClock } from "../clock.ts";
 * const breaker = new CircuitBreaker({ failures: 5, cooldownMs: 5000, clock: systemClock });
 * if (breaker.tryAcquire()) breaker.succeeded();
 * ```
 */
export class CircuitBreaker {
  readonly #options: BreakerOptions;
  #failures = 0;
  #openedAt = 0;
  #state: BreakerState = "closed";
  /** Half-open: the one trial call is out. */
  #trialOut = false;

  /** @param options thresholds, clock and listener */
  constructor(options: BreakerOptions) {
    this.#options = options;
  }

  /** The current state (an open breaker past its cool-down reads as half-open). */
  get state(): BreakerState {
    if (this.#state === "open" && this.#cooledDown()) return "half_open";
    return this.#state;
  }

  /** Whether a call may go out now; a half-open breaker lets exactly one through. */
  tryAcquire(): boolean {
    if (this.#state === "closed") return true;
    if (this.#state === "open") {
      if (!this.#cooledDown()) return false;
      this.#set("half_open");
    }
    if (this.#trialOut) return false;
    this.#trialOut = true;
    return true;
  }

  /** The call that went out succeeded. */
  succeeded(): void {
    this.#failures = 0;
    this.#trialOut = false;
    if (this.#state !== "closed") this.#set("closed");
  }

  /** The call that went out failed. */
  failed(): void {
    this.#trialOut = false;
    this.#failures++;
    if (this.#state === "half_open" || this.#failures >= this.#options.failures) {
      this.#openedAt = this.#options.clock.now();
      if (this.#state !== "open") this.#set("open");
    }
  }

  #cooledDown(): boolean {
    return this.#options.clock.now() - this.#openedAt >= this.#options.cooldownMs;
  }

  #set(state: BreakerState): void {
    this.#state = state;
    this.#options.onChange?.(state);
  }
}
