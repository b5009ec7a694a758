/**
 * Building the refusals core operations answer with ({@linkcode Outcome}s
 * that are not ok).
 *
 * @module
 */
import { ErrorCode } from "../codes.ts";
import { errorMessage } from "../errors.ts";
import { MessageTooLargeError } from "./rooms.ts";
import { StoreUnavailableError } from "../store/types.ts";
import type { CoreContext, SessionError } from "./types.ts";

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

/** Why a publish to `room` failed, in a refusal; an unexpected error is audited. */
export function publishRefusal(
  ctx: Pick<CoreContext, "audit" | "counters">,
  who: { readonly userId: string; readonly id: string },
  err: unknown,
  room: string,
): Refused {
  if (err instanceof MessageTooLargeError) {
    return refused(ErrorCode.PayloadTooLarge, "message too large for the bus", room);
  }
  const down = storeDown(
    ctx,
    err,
    "the history store is unavailable; the message was not delivered, retry with the same id",
    room,
  );
  if (down !== undefined) return down;
  ctx.audit.record("internal_error", {
    user: who.userId,
    connection: who.id,
    room,
    error: errorMessage(err),
  });
  return refused(ErrorCode.Internal, "the message could not be published", room);
}

/** A store that is down, as a counted `unavailable` refusal; undefined for any other error. */
export function storeDown(
  ctx: Pick<CoreContext, "counters">,
  err: unknown,
  message: string,
  room: string,
): Refused | undefined {
  if (!(err instanceof StoreUnavailableError)) return undefined;
  ctx.counters.unavailable++;
  return unavailable(err, message, room);
}
