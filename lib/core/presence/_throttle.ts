/**
 * Reporting a fault that repeats: a store outage fails every write and every
 * tick, and the operator needs to hear of it once per interval, not each time.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";

/**
 * Wraps `report` so that it passes at most one call per `intervalMs`; the
 * others are dropped.
 *
 * @example
 * ```ts ignore
 * const warn = throttle((err) => log.warn(String(err)), 10_000, systemClock);
 * ```
 */
export function throttle(
  report: (err: unknown) => void,
  intervalMs: number,
  clock: Clock,
): (err: unknown) => void {
  let last = -Infinity;
  return (err) => {
    const now = clock.now();
    if (now - last < intervalMs) return;
    last = now;
    report(err);
  };
}
