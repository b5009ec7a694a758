/**
 * The synchronous hooks (issue 18), built from the `hooks` section of the
 * config: one {@linkcode HookCaller} per hook whose URL is set, each with its
 * own concurrency cap and circuit breaker, all signed with `WEBHOOK_SECRET`.
 *
 * @module
 */
import type { AuditSink } from "../audit.ts";
import type { Clock } from "../clock.ts";
import type { HooksConfig } from "../config.ts";
import { HookCaller, type HookObserver } from "./caller.ts";
import type { HookName } from "./contract.ts";

export { HookCaller } from "./caller.ts";
export type { HookCallerOptions, HookFailure, HookObserver, HookResult } from "./caller.ts";
export * from "./contract.ts";

/** The hooks whose URL is set; the others are undefined (off). */
export interface Hooks {
  readonly connect?: HookCaller;
  readonly join?: HookCaller;
  readonly publish?: HookCaller;
  readonly rpc?: HookCaller;
  /** `HOOK_CONNECT_FAIL=open`: a failed connect hook lets a verified token in. */
  readonly connectFailOpen: boolean;
}

/** Aborts every hook call in flight; later calls fail at once (the server is closing). */
export function closeHooks(hooks: Hooks): void {
  for (const hook of ["connect", "join", "publish", "rpc"] as const) hooks[hook]?.close();
}

/** What {@linkcode createHooks} needs besides the config. */
export interface HookDeps {
  clock: Clock;
  audit: AuditSink;
  /** @default none */
  observe?: HookObserver;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
}

/**
 * One caller per hook whose URL is set.
 *
 * @example
 * ```ts ignore
 * const hooks = createHooks(config.hooks, { clock, audit });
 * if (hooks.join !== undefined) await hooks.join.call(request, JoinAnswer);
 * ```
 */
export function createHooks(config: HooksConfig, deps: HookDeps): Hooks {
  const make = (hook: HookName, url: string | undefined): HookCaller | undefined => {
    if (url === undefined || config.secret === undefined) return undefined;
    return new HookCaller({
      hook,
      url,
      secret: config.secret,
      timeoutMs: config.timeoutMs,
      concurrency: config.concurrency,
      breakerFailures: config.breakerFailures,
      breakerCooldownMs: config.breakerCooldownMs,
      ...deps,
    });
  };
  const hooks: { -readonly [K in keyof Hooks]: Hooks[K] } = {
    connectFailOpen: config.connectFail === "open",
  };
  const { urls } = config;
  for (const hook of ["connect", "join", "publish", "rpc"] as const) {
    const caller = make(hook, urls[hook]);
    if (caller !== undefined) hooks[hook] = caller;
  }
  return hooks;
}
