/**
 * One place that turns a failed credential check into the audit record, the
 * metric and the generic RFC 6750 challenge, for every HTTP route.
 *
 * @module
 */
import type { AuditSink } from "../../audit.ts";
import { AuthError } from "../../core/auth.ts";
import type { AuthFailureReason } from "../../codes.ts";
import { Counters } from "../../metrics.ts";

/** The `WWW-Authenticate` value for a missing or a rejected credential (RFC 6750 §3). */
export function challenge(reason: AuthFailureReason, realm = "realtime"): string {
  return reason === "missing"
    ? `Bearer realm="${realm}"`
    : `Bearer realm="${realm}", error="invalid_token"`;
}

/** The failure reason of anything a verifier threw. */
export function reasonOf(err: unknown): AuthFailureReason {
  return err instanceof AuthError ? err.reason : "malformed";
}

/** Records an authentication failure: metric by reason, audit line with the address, never the credential. */
export function recordAuthFailure(
  audit: AuditSink,
  counters: Counters,
  reason: AuthFailureReason,
  ip: string,
  source: string | undefined,
): void {
  Counters.bump(counters.authFailures, reason);
  audit.record("auth_failure", { reason, ip, source });
}
