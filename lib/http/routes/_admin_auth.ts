/**
 * Who may use the operator APIs (`POST /api/publish`, `GET /api/admin/stats`,
 * and any later admin route): the `API_KEY` bearer, or a JWT whose roles
 * include `ADMIN_ROLE`. One implementation, so that every admin route refuses
 * and audits the same way.
 *
 * @module
 */
import type { AuditSink } from "../../audit.ts";
import type { Principal, TokenVerifier } from "../../core/auth.ts";
import type { AdminConfig } from "../../config.ts";
import { apiError, bearer, secretsEqual } from "../common.ts";
import type { Counters } from "../../metrics.ts";
import { challenge, reasonOf, recordAuthFailure } from "./_auth_failure.ts";

/** What {@linkcode adminAuthorizer} needs. */
export interface AdminAuthDeps {
  /** Who counts as an operator: `API_KEY`, `ADMIN_ROLE`. */
  admin: Pick<AdminConfig, "apiKey" | "role">;
  verifier: TokenVerifier;
  audit: AuditSink;
  counters: Counters;
}

/** An authorized operator: `"server"` for the API key, the admin's `sub` for a JWT. */
export interface AdminCaller {
  readonly from: string;
}

/**
 * Checks a request's bearer credential. Resolves to the caller, or to the
 * ready-made refusal: 401 (generic, reason in the audit log and metrics) or
 * 403 (a valid token without the admin role). `source` names the route in
 * audit records and the auth-failure metric's audit line.
 */
export type AdminAuthorize = (
  req: Request,
  ip: string,
  source: string,
) => Promise<AdminCaller | Response>;

/** Whether any admin credential is configured; admin routes answer 404 otherwise. */
export function adminEnabled(admin: Pick<AdminConfig, "apiKey" | "role">): boolean {
  return admin.apiKey !== undefined || admin.role !== undefined;
}

/**
 * Builds the admin check shared by every operator route.
 *
 * @example
 * ```ts ignore
 * const authorize = adminAuthorizer({ admin, verifier, audit, counters });
 * const caller = await authorize(req, ip, "publish_api");
 * if (caller instanceof Response) return caller;
 * ```
 */
export function adminAuthorizer(deps: AdminAuthDeps): AdminAuthorize {
  const { admin, verifier, audit, counters } = deps;
  return async (req, ip, source) => {
    const credential = bearer(req);
    if (credential === null) {
      return apiError(401, "unauthorized", "missing bearer credential", {
        "www-authenticate": challenge("missing"),
      });
    }
    if (admin.apiKey !== undefined && secretsEqual(credential, admin.apiKey)) {
      return { from: "server" };
    }
    // Not a JWT (no dots): it was meant as the API key, and it is wrong.
    if (admin.role === undefined || !credential.includes(".")) {
      recordAuthFailure(audit, counters, "bad_api_key", ip, source);
      return apiError(401, "unauthorized", "invalid credential", {
        "www-authenticate": challenge("bad_api_key"),
      });
    }
    let principal: Principal;
    try {
      principal = await verifier.verify(credential);
    } catch (err) {
      const reason = reasonOf(err);
      recordAuthFailure(audit, counters, reason, ip, source);
      return apiError(401, "unauthorized", "invalid credential", {
        "www-authenticate": challenge(reason),
      });
    }
    if (!principal.roles.includes(admin.role)) {
      audit.record("deny", { user: principal.userId, ip, source });
      return apiError(403, "forbidden", `the token lacks the ${admin.role} role`);
    }
    return { from: principal.userId };
  };
}
