/**
 * Argument checks shared by the history store backends: the config validates
 * limits first, so these only catch programming errors.
 *
 * @module
 */
import type { HistoryLimits } from "./types.ts";

/** Refuses limits no room can have. */
export function checkLimits(limits: HistoryLimits): void {
  const { size, ttlMs } = limits;
  if (!Number.isSafeInteger(size) || size < 1) {
    throw new RangeError(
      `Cannot use history limits: size must be a positive integer, current value is ${size}`,
    );
  }
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new RangeError(
      `Cannot use history limits: ttlMs must be positive, current value is ${ttlMs}`,
    );
  }
}

/** Refuses a read `limit` that is not a count. */
export function checkReadLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw new RangeError(
      `Cannot read history: limit must be an integer ≥ 0, current value is ${limit}`,
    );
  }
}
