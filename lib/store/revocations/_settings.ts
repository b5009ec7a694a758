/**
 * What every revocation backend takes the same way: its bound on active
 * revocations and its clock, with the defaults applied and the bound
 * checked once for memory, Redis and KV alike.
 *
 * @module
 */
import { type Clock, systemClock } from "../../clock.ts";

/** The options every revocation store shares. */
export interface RevocationStoreOptions {
  /**
   * Most active revocations held; past it the one that lapses soonest makes room.
   *
   * @default {100000}
   */
  maxEntries?: number;
  /** Time source for expiry. @default systemClock */
  clock?: Clock;
}

/** {@linkcode RevocationStoreOptions} with their defaults applied. */
export interface RevocationSettings {
  /** Most active revocations held. */
  maxEntries: number;
  /** Time source for expiry. */
  clock: Clock;
}

/**
 * The bound and clock of `options`, defaults applied.
 *
 * @throws {RangeError} when `maxEntries` is not a positive integer
 * @example
 * ```ts
 * import { revocationSettings } from "./_settings.ts";
 * const { maxEntries } = revocationSettings({});
 * console.assert(maxEntries === 100_000);
 * ```
 */
export function revocationSettings(options: RevocationStoreOptions): RevocationSettings {
  const { maxEntries = 100_000, clock = systemClock } = options;
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new RangeError(
      `Cannot create revocation store: maxEntries must be a positive integer, current value is ${maxEntries}`,
    );
  }
  return { maxEntries, clock };
}
