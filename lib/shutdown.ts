/**
 * How a signal ends the process: gracefully (1001, buffered frames get
 * `SHUTDOWN_GRACE_MS`), or, on Deno Deploy, fast. Deploy evicts an instance
 * with SIGINT and kills it with SIGKILL five seconds later, after it has
 * already diverted new traffic elsewhere; waiting ten seconds for slow
 * readers would only end in SIGKILL with the sockets never told. There every
 * socket is closed at once with 1012 "service restart", so its client
 * reconnects straight away and lands on another instance (history rooms
 * recover there with `since`), and everything else is bounded to finish well
 * inside the five seconds. main.ts follows the plan.
 *
 * @module
 */

/** What main.ts does between a signal and the exit. */
export interface ShutdownPlan {
  /** Close sockets with 1012 "service restart" (true) or 1001 "server going away". */
  restart: boolean;
  /** How long to wait for the sockets' close handshakes (buffered frames). */
  graceMs: number;
  /** How long to wait for HTTP requests still in flight once the sockets are closed. */
  httpDrainMs: number;
  /**
   * Exit by this many ms after the signal whatever is still closing (stores,
   * bus, log flush), or `undefined` for no deadline.
   */
  deadlineMs: number | undefined;
}

/** Deploy's time between SIGINT and SIGKILL. */
export const DEPLOY_KILL_AFTER_MS = 5000;
/** On an eviction: the close handshakes, at most. */
export const EVICTION_GRACE_MS = 500;
/** On an eviction: in-flight HTTP requests, at most. */
export const EVICTION_HTTP_DRAIN_MS = 500;
/** On an eviction: the process exits by then, a second before Deploy's SIGKILL. */
export const EVICTION_DEADLINE_MS = DEPLOY_KILL_AFTER_MS - 1000;
/** Elsewhere: in-flight HTTP requests once the sockets are closed. */
export const HTTP_DRAIN_MS = 2000;

/**
 * The plan for a signal: on Deno Deploy every signal is an eviction (fast,
 * 1012); elsewhere SIGINT and SIGTERM are both graceful (1001,
 * `shutdownGraceMs`).
 *
 * @example
 * ```ts
 * import { shutdownPlan } from "./shutdown.ts";
 * shutdownPlan({ onDeploy: true, shutdownGraceMs: 10_000 }).restart; // true
 * ```
 */
export function shutdownPlan(server: { onDeploy: boolean; shutdownGraceMs: number }): ShutdownPlan {
  if (server.onDeploy) {
    return {
      restart: true,
      graceMs: Math.min(server.shutdownGraceMs, EVICTION_GRACE_MS),
      httpDrainMs: EVICTION_HTTP_DRAIN_MS,
      deadlineMs: EVICTION_DEADLINE_MS,
    };
  }
  return {
    restart: false,
    graceMs: server.shutdownGraceMs,
    httpDrainMs: HTTP_DRAIN_MS,
    deadlineMs: undefined,
  };
}
