/**
 * Time, injected. Everything that reads the time or owns a timer takes a
 * {@linkcode Clock} so tests can move time forward instead of sleeping.
 *
 * @module
 */

/** An opaque timer handle returned by {@linkcode Clock.setTimeout}. */
export type TimerId = ReturnType<typeof setTimeout>;

/** The time source and timer factory used by the server. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Run `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerId;
  /** Cancel a timer; unknown or fired ids are ignored. */
  clearTimeout(id: TimerId): void;
  /** Run `fn` every `ms` milliseconds; must not keep the process alive on its own. */
  setInterval(fn: () => void, ms: number): TimerId;
  /** Cancel an interval. */
  clearInterval(id: TimerId): void;
}

/**
 * The real clock. Intervals are unref'd: housekeeping (bucket sweeps, ticket
 * expiry) must never be what keeps a process from exiting.
 *
 * @example
 * ```ts
 * import { systemClock } from "./clock.ts";
 * const started = systemClock.now();
 * ```
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id),
  setInterval: (fn, ms) => {
    const id = setInterval(fn, ms);
    Deno.unrefTimer(id);
    return id;
  },
  clearInterval: (id) => clearInterval(id),
};
