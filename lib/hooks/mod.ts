/**
 * The synchronous hooks (issue 18), built from the `hooks` section of the
 * config: one {@linkcode HookCaller} per hook whose URL is set, each with its
 * own concurrency cap and circuit breaker, all signed with `WEBHOOK_SECRET`.
 *
 * @module
 */
import type { AuditSink } from "../audit.ts";
import type { Clock } from "../clock.ts";
import type { HooksConfig, LimitsConfig } from "../config.ts";
import { JoinHook } from "../core/join_hook.ts";
import { BackendHooks } from "../core/publish_hook.ts";
import type { RoomPolicy } from "../core/room_policy.ts";
import type { Metrics } from "../metrics.ts";
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

/** The hooks as the server uses them: the callers, and the core's join, publish and RPC deciders. */
export interface HookServices {
  readonly callers: Hooks;
  /** Rooms neither token nor policy grants: asked of the join hook (cached per node). */
  readonly joins: JoinHook;
  /** The publish and RPC hooks as sessions use them. */
  readonly backend: BackendHooks;
}

/** What {@linkcode openHooks} needs besides the config. */
export interface OpenHookDeps extends Omit<HookDeps, "observe" | "fetch"> {
  /** Counts the calls (`realtime_hook_*`) and the join denials. */
  metrics: Metrics;
  /** Which rooms' messages go through the publish hook. */
  policy: Pick<RoomPolicy, "hookFor">;
  /** The limits a rewritten payload is held to. */
  limits: Pick<LimitsConfig, "maxMessageBytes" | "maxPayloadDepth">;
  /** @default globalThis.fetch */
  fetch?: typeof fetch | undefined;
}

/**
 * Builds every hook the config sets, and the core's deciders over them.
 *
 * @example
 * ```ts ignore
 * const hooks = openHooks(config.hooks, { clock, audit, metrics, policy, limits: config.limits });
 * ```
 */
export function openHooks(config: HooksConfig, deps: OpenHookDeps): HookServices {
  const { clock, audit, metrics, policy, limits } = deps;
  const callers = createHooks(config, {
    clock,
    audit,
    observe: metrics.watchHooks(),
    ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
  });
  return {
    callers,
    joins: new JoinHook({ caller: callers.join, clock, audit, counters: metrics.counters }),
    backend: new BackendHooks({
      publish: callers.publish,
      rpc: callers.rpc,
      policy,
      limits,
      audit,
    }),
  };
}

/** Aborts every hook call in flight; later calls fail at once (the server is closing). */
export function closeHooks(hooks: HookServices): void {
  for (const hook of ["connect", "join", "publish", "rpc"] as const) hooks.callers[hook]?.close();
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
