/**
 * The join hook in the core (issue 18): a room that neither the token nor
 * the policy grants is asked of the backend (`HOOK_JOIN_URL`). An allow
 * answer grants read or publish access (and the presence info to show), and
 * is remembered on this node for (user, room) for its `cacheSec`, covering a
 * rejoin and the user's other connections. A denial or a failed call is
 * `forbidden` (fail closed), audited.
 *
 * @module
 */
import type { AuditSink } from "../audit.ts";
import type { Clock } from "../clock.ts";
import { ErrorCode } from "../codes.ts";
import type { Counters } from "../metrics.ts";
import { Counters as CounterBump } from "../metrics.ts";
import type { HookCaller } from "../hooks/caller.ts";
import { claimsOf, JoinAnswer } from "../hooks/contract.ts";
import type { Principal } from "./auth.ts";
import { refused } from "./refusals.ts";
import type { Answer, JoinGrant, SessionInfo } from "./types.ts";

/** Most (user, room) answers remembered; the oldest is forgotten past it. */
export const MAX_JOIN_CACHE = 100_000;

/** The session a join is asked for. */
export interface JoinAsker {
  readonly id: string;
  readonly principal: Principal;
  readonly info: SessionInfo;
  readonly ended: boolean;
}

/** Options for {@linkcode JoinHook}. */
export interface JoinHookOptions {
  /** The caller of `HOOK_JOIN_URL`; undefined: no hook, a room not granted is denied. */
  caller: HookCaller | undefined;
  clock: Clock;
  audit: AuditSink;
  counters: Counters;
  /** @default {MAX_JOIN_CACHE} */
  maxCached?: number;
}

/** What a cached allow grants. */
interface Cached {
  until: number;
  grant: JoinGrant & { access: "read" | "publish" };
}

/** What one call decided. */
interface Verdict {
  grant?: Cached["grant"];
  /** For the audit log: why the room was denied. */
  why?: string;
  /** The backend's reason, for the client. */
  reason?: string;
}

/**
 * Decides the rooms the token and policy do not grant; one per node, shared
 * by every session.
 *
 * @example
 * ```ts ignore
 * if (access === "none") return ctx.joins.decide(session, room, answer, (grant) => retry(grant));
 * ```
 */
export class JoinHook {
  readonly #o: JoinHookOptions;
  readonly #max: number;
  readonly #cache = new Map<string, Cached>();
  /** Calls in flight, by (user, room): joins arriving meanwhile wait for the same answer. */
  readonly #asking = new Map<string, Promise<Verdict>>();

  /** @param options the hook's caller and the services it reports to */
  constructor(options: JoinHookOptions) {
    this.#o = options;
    this.#max = options.maxCached ?? MAX_JOIN_CACHE;
  }

  /** Answers remembered now. */
  get cached(): number {
    return this.#cache.size;
  }

  /**
   * A room the token and policy do not grant: asks the backend (or takes its
   * cached answer) and calls `retry` with its grant, or answers `forbidden`.
   * Concurrent joins of one user to one room share one call.
   */
  decide(
    session: JoinAsker,
    room: string,
    answer: Answer<never>,
    retry: (grant: JoinGrant) => void,
  ): void {
    const caller = this.#o.caller;
    if (caller === undefined) return this.#deny(session, room, answer, undefined);
    const key = `${session.principal.userId}\n${room}`;
    const hit = this.#cache.get(key);
    if (hit !== undefined && hit.until > this.#o.clock.now()) return retry(hit.grant);
    if (hit !== undefined) this.#cache.delete(key);
    let verdict = this.#asking.get(key);
    if (verdict === undefined) {
      verdict = this.#ask(caller, session, room, key);
      this.#asking.set(key, verdict);
      void verdict.finally(() => this.#asking.delete(key));
    }
    void verdict.then((v) => {
      if (session.ended) return;
      if (v.grant !== undefined) return retry(v.grant);
      this.#deny(session, room, answer, v.why, v.reason);
    });
  }

  /** One call: the grant, or why not (and the backend's reason to tell the client). */
  async #ask(caller: HookCaller, session: JoinAsker, room: string, key: string): Promise<Verdict> {
    const { principal } = session;
    const result = await caller.call({
      userId: principal.userId,
      claims: claimsOf(principal),
      connectionId: session.id,
      ip: session.info.ip,
      room,
    }, JoinAnswer);
    if (!result.ok) return { why: `hook ${result.failure}` };
    const { allow, readonly, presence, cacheSec, reason } = result.value;
    if (!allow) return { why: "hook denied", ...(reason === undefined ? {} : { reason }) };
    const grant: Cached["grant"] = {
      access: readonly === true ? "read" : "publish",
      ...(presence === undefined || presence === null
        ? {}
        : { as: { userId: principal.userId, info: presence } }),
    };
    if (cacheSec !== undefined && cacheSec > 0) this.#remember(key, grant, cacheSec);
    return { grant };
  }

  #remember(key: string, grant: Cached["grant"], cacheSec: number): void {
    this.#cache.delete(key);
    if (this.#cache.size >= this.#max) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(key, { until: this.#o.clock.now() + cacheSec * 1000, grant });
  }

  #deny(
    session: JoinAsker,
    room: string,
    answer: Answer<never>,
    why: string | undefined,
    reason?: string | undefined,
  ): void {
    const { audit, counters } = this.#o;
    CounterBump.bump(counters.denials, ErrorCode.Forbidden);
    audit.record("deny", {
      user: session.principal.userId,
      connection: session.id,
      room,
      ...(why === undefined ? {} : { hook: why }),
    });
    answer(refused(ErrorCode.Forbidden, reason ?? "you may not join this room", room));
  }
}
