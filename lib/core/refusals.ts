/**
 * Building the refusals core operations answer with ({@linkcode Outcome}s
 * that are not ok).
 *
 * @module
 */
import { ErrorCode } from "../codes.ts";
import type { StoreUnavailableError } from "../store/types.ts";
import type { SessionError } from "./types.ts";

/** An outcome that refuses. */
export type Refused = { readonly ok: false; readonly error: SessionError };

/** Refuses with `code`, about `room` when given. */
export function refused(code: ErrorCode, message: string, room?: string): Refused {
  return { ok: false, error: room === undefined ? { code, message } : { code, message, room } };
}

/** Refuses as `unavailable`, with the store's retry hint. */
export function unavailable(err: StoreUnavailableError, message: string, room: string): Refused {
  return {
    ok: false,
    error: { code: ErrorCode.Unavailable, message, room, retryAfterMs: err.retryAfterMs },
  };
}
