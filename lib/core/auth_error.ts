/**
 * The one error a token verifier throws: {@linkcode AuthError}, whose
 * precise reason goes to the audit log and metrics, never to the client.
 *
 * @module
 */
import type { AuthFailureReason } from "../codes.ts";

/** Verification failed. `reason` is for logs and metrics, never for the client. */
export class AuthError extends Error {
  /** Why verification failed. */
  readonly reason: AuthFailureReason;
  /** @param reason why @param message detail for the log (never contains the token) */
  constructor(reason: AuthFailureReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuthError";
    this.reason = reason;
  }
}
