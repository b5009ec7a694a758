/**
 * The one way a supervised connection (lib/redis_link.ts, lib/redis_cluster.ts)
 * tells a caller when it is up: a waiter in a set the connection calls with
 * `true` once connected and `false` when it closes.
 *
 * @module
 */

/** Called with `true` once connected, `false` on close. */
export type ReadyWaiter = (connected: boolean) => void;

/**
 * Resolves true at once when `ok`, false at once when `closed`; otherwise
 * adds a waiter to `waiters` and resolves with what it is called with, or
 * false after `timeoutMs` (the waiter and its timer are removed either way).
 *
 * @example
 * ```ts
 * const waiters = new Set<ReadyWaiter>();
 * const up = awaitReady(false, false, waiters, 1000);
 * for (const waiter of [...waiters]) waiter(true);
 * console.assert(await up);
 * ```
 */
export function awaitReady(
  ok: boolean,
  closed: boolean,
  waiters: Set<ReadyWaiter>,
  timeoutMs: number,
): Promise<boolean> {
  if (ok) return Promise.resolve(true);
  if (closed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (connected: boolean) => {
      clearTimeout(timer);
      waiters.delete(done);
      resolve(connected);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    waiters.add(done);
  });
}
