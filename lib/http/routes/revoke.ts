/**
 * `/api/revoke`: operators cut off a user or one token before it expires
 * (`POST`), lift that (`DELETE`) and list what is in force (`GET`). Same
 * authorization as the publish API. The work is done by `lib/core/revocations.ts`.
 *
 * @module
 */
import { z } from "zod";
import type { AuditSink } from "../../audit.ts";
import type { TokenVerifier } from "../../core/auth.ts";
import type { Clock } from "../../clock.ts";
import type { AdminConfig, LimitsConfig } from "../../config.ts";
import { apiError, json, readJsonBody } from "../common.ts";
import type { Counters } from "../../metrics.ts";
import type { Revocations } from "../../core/revocations.ts";
import {
  MAX_REASON_LENGTH,
  MAX_SUBJECT_LENGTH,
  type Revocation,
  type RevocationKind,
} from "../../store/revocations/types.ts";
import { retryAfter, StoreUnavailableError } from "../../store/types.ts";
import { adminAuthorizer, adminEnabled } from "./_admin_auth.ts";

/** Largest request body, in bytes: ids and a reason fit well within it. */
const MAX_BODY_BYTES = 4096;
/** Farthest ahead `untilSec` may be. */
const MAX_AHEAD_MS = 366 * 86_400_000;
/** Most revocations one `GET` lists unless `?limit=` says otherwise, and the most it may ask. */
const DEFAULT_LIST_LIMIT = 1000;
const MAX_LIST_LIMIT = 10_000;

/** The body of `POST` and `DELETE /api/revoke`: exactly one of `userId` and `jti`. */
export const RevokeBody = z.strictObject({
  /** Revoke every token of this user issued up to now. */
  userId: z.string().min(1).max(MAX_SUBJECT_LENGTH).optional(),
  /** Revoke the one token with this `jti`. */
  jti: z.string().min(1).max(MAX_SUBJECT_LENGTH).optional(),
  /** Why, for the audit log and the list. */
  reason: z.string().max(MAX_REASON_LENGTH).optional(),
  /** When the revocation lapses, in seconds since the epoch (ignored by `DELETE`). */
  untilSec: z.number().int().positive().optional(),
}).refine((b) => (b.userId === undefined) !== (b.jti === undefined), {
  message: 'give exactly one of "userId" or "jti"',
});
/** A parsed revoke body. */
export type RevokeBody = z.infer<typeof RevokeBody>;

/** What the revoke routes need. */
export interface RevokeRouteDeps {
  /** `API_KEY` and `ADMIN_ROLE`: who may call it. */
  admin: Pick<AdminConfig, "apiKey" | "role">;
  /** The lifetime of a revocation without `untilSec` (`REVOCATION_TTL_SEC`, in ms). */
  revocationTtlMs: number;
  /** The body's arrival deadline. */
  limits: Pick<LimitsConfig, "bodyTimeoutMs">;
  verifier: TokenVerifier;
  revocations: Revocations;
  clock: Clock;
  audit: AuditSink;
  counters: Counters;
  /** Aborted when the server shuts down: a body still arriving is abandoned. */
  shutdownSignal: AbortSignal;
}

/** A revocation as `GET /api/revoke` shows it. */
function view(r: Revocation): Record<string, string | number> {
  const out: Record<string, string | number> = r.kind === "user"
    ? { userId: r.subject }
    : { jti: r.subject };
  out.revokedAt = r.revokedAt;
  out.until = r.until;
  out.by = r.by;
  if (r.reason !== undefined) out.reason = r.reason;
  return out;
}

/** The body of POST and DELETE, or the error response that says what is wrong with it. */
function readBody(req: Request, deps: RevokeRouteDeps): Promise<RevokeBody | Response> {
  return readJsonBody(req, RevokeBody, {
    limit: MAX_BODY_BYTES,
    timeoutMs: deps.limits.bodyTimeoutMs,
    signal: deps.shutdownSignal,
    notJson: () => 'body is not valid JSON: send {"userId":…} or {"jti":…}',
  });
}

/** Whom a body names. */
function target(body: RevokeBody): { kind: RevocationKind; subject: string } {
  return body.userId !== undefined
    ? { kind: "user", subject: body.userId }
    : { kind: "jti", subject: body.jti! };
}

/** The store could not be reached: nothing changed. */
function unavailable(err: StoreUnavailableError): Response {
  return apiError(
    503,
    "unavailable",
    "the revocation store cannot be reached; nothing changed",
    retryAfter(err),
  );
}

/** `POST`: revokes, closing the sessions concerned. */
async function revoke(
  deps: RevokeRouteDeps,
  body: RevokeBody,
  caller: { by: string; ip: string },
): Promise<Response> {
  const { revocations, clock, audit } = deps;
  const { by, ip } = caller;
  const now = clock.now();
  const until = body.untilSec !== undefined ? body.untilSec * 1000 : now + deps.revocationTtlMs;
  if (until <= now) return apiError(400, "bad_request", "untilSec: must be in the future");
  if (until > now + MAX_AHEAD_MS) {
    return apiError(400, "bad_request", "untilSec: must be at most 366 days ahead");
  }
  const { kind, subject } = target(body);
  const request = body.reason === undefined
    ? { kind, subject, until, by }
    : { kind, subject, until, by, reason: body.reason };
  let result;
  try {
    result = await revocations.revoke(request);
  } catch (err) {
    if (err instanceof StoreUnavailableError) return unavailable(err);
    throw err;
  }
  const { evicted } = result;
  audit.record("revoke", {
    by,
    [kind === "user" ? "user" : "jti"]: subject,
    reason: body.reason,
    until,
    closed: result.closed,
    ip,
    // A full list made room by dropping the revocation that lapses soonest.
    ...(evicted === undefined ? {} : { evicted: `${evicted.kind}:${evicted.subject}` }),
  });
  return json(202, { closed: result.closed, until });
}

/** `DELETE`: lifts a revocation in force. */
async function lift(
  deps: RevokeRouteDeps,
  body: RevokeBody,
  caller: { by: string; ip: string },
): Promise<Response> {
  const { revocations, audit } = deps;
  const { by, ip } = caller;
  const { kind, subject } = target(body);
  let lifted: boolean;
  try {
    lifted = await revocations.lift(kind, subject);
  } catch (err) {
    if (err instanceof StoreUnavailableError) return unavailable(err);
    throw err;
  }
  audit.record("unrevoke", {
    by,
    [kind === "user" ? "user" : "jti"]: subject,
    reason: body.reason,
    lifted,
    ip,
  });
  if (!lifted) {
    return apiError(
      404,
      "not_found",
      `no revocation of this ${kind === "user" ? "user" : "jti"} is in force`,
    );
  }
  return json(200, { lifted: true });
}

/** `GET`: the revocations in force, newest first, at most `?limit=`. */
function list(req: Request, revocations: Revocations): Response {
  const raw = new URL(req.url).searchParams.get("limit");
  const limit = raw === null ? DEFAULT_LIST_LIMIT : Number(raw);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
    return apiError(
      400,
      "bad_request",
      `limit: must be a whole number from 1 to ${MAX_LIST_LIMIT}`,
    );
  }
  const all = revocations.list();
  return json(200, { revocations: all.slice(0, limit).map(view), total: all.length });
}

/** Builds the `/api/revoke` handler for GET, POST and DELETE (the router answers other methods). */
export function revokeRoute(
  deps: RevokeRouteDeps,
): (req: Request, ip: string) => Promise<Response> {
  const authorize = adminAuthorizer(deps);
  return async (req, ip) => {
    if (!adminEnabled(deps.admin)) {
      return apiError(
        404,
        "not_found",
        "the revocation API is disabled: set API_KEY or ADMIN_ROLE",
      );
    }
    const caller = await authorize(req, ip, "revoke_api");
    if (caller instanceof Response) return caller;
    if (req.method === "GET") return list(req, deps.revocations);
    const body = await readBody(req, deps);
    if (body instanceof Response) return body;
    return req.method === "POST"
      ? await revoke(deps, body, { by: caller.from, ip })
      : await lift(deps, body, { by: caller.from, ip });
  };
}
