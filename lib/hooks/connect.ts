/**
 * The connect hook's decision, asked after the token is verified and before
 * the upgrade: the backend may refuse (its 4xx status and short reason are
 * the HTTP answer), or let the connection in with presence `info` and extra
 * room grants. A failed call refuses with 503, unless `HOOK_CONNECT_FAIL=open`.
 *
 * @module
 */
import type { Principal } from "../core/auth.ts";
import type { ConnectGrant } from "../core/types.ts";
import { claimsOf, ConnectAnswer } from "./contract.ts";
import type { Hooks } from "./mod.ts";

/** The connect hook's verdict on one handshake. */
export type ConnectVerdict =
  | { ok: true; principal: Principal; grant?: ConnectGrant }
  | { ok: false; status: number; reason: string };

/**
 * `principal` with what the connect hook granted: its rooms added to the
 * token's, its info in place of the token's. A refresh applies it again to
 * the new token, so the grant lasts as long as the connection.
 */
export function withConnectGrant(principal: Principal, grant: ConnectGrant | undefined): Principal {
  if (grant === undefined) return principal;
  const granted: Principal = { ...principal };
  if (grant.rooms !== undefined) granted.rooms = [...principal.rooms, ...grant.rooms];
  if (grant.info !== undefined) granted.info = grant.info;
  return granted;
}

/** Facts of the handshake the request carries. */
export interface ConnectFacts {
  /** The id the session will have (its `welcome` names it). */
  connectionId: string;
  ip: string;
}

/** Control characters would break the plain-text answer the reason goes in. */
function printable(text: string): string {
  return [...text].map((c) => c < " " || c === "\u007f" ? " " : c).join("");
}

/**
 * Asks the connect hook, when there is one, whether `principal` may connect:
 * the principal to go on with (its `rooms` extended by the answer's, its
 * `info` replaced by the answer's), or the refusal to answer.
 *
 * @example
 * ```ts ignore
 * const verdict = await askConnect(hooks, principal, { connectionId, ip });
 * if (!verdict.ok) return refuse(verdict.status, verdict.reason);
 * ```
 */
export async function askConnect(
  hooks: Pick<Hooks, "connect" | "connectFailOpen">,
  principal: Principal,
  facts: ConnectFacts,
): Promise<ConnectVerdict> {
  const caller = hooks.connect;
  if (caller === undefined) return { ok: true, principal };
  const result = await caller.call({
    userId: principal.userId,
    claims: claimsOf(principal),
    connectionId: facts.connectionId,
    ip: facts.ip,
  }, ConnectAnswer);
  if (!result.ok) {
    if (hooks.connectFailOpen) return { ok: true, principal };
    return { ok: false, status: 503, reason: "the backend did not answer; try again" };
  }
  const answer = result.value;
  if (!answer.allow) {
    return {
      ok: false,
      status: answer.status ?? 403,
      reason: printable(answer.reason ?? "connection refused by the backend"),
    };
  }
  const grant: ConnectGrant = {
    ...(answer.rooms === undefined ? {} : { rooms: answer.rooms }),
    ...(answer.info === undefined || answer.info === null ? {} : { info: answer.info }),
  };
  return { ok: true, principal: withConnectGrant(principal, grant), grant };
}
