/**
 * The one error class the client produces, for rejected requests and
 * `"error"` events alike.
 *
 * @module
 */
import type { ClientErrorCode } from "./codes.ts";

/** Extra fields of a {@linkcode RealtimeError}. */
export interface RealtimeErrorOptions {
  /** Room the failed request or server error was about. */
  room?: string | undefined;
  /** From `rate_limited`: how long to wait before publishing again. */
  retryAfterMs?: number | undefined;
  /** The underlying failure, e.g. what a token function threw. */
  cause?: unknown;
}

/**
 * Every error the client produces, whether it rejects a request or is passed
 * to `"error"` listeners. Switch on `code`, not on `message`.
 *
 * @example
 * ```ts ignore
 * try {
 *   await rt.join("admin", () => {});
 * } catch (err) {
 *   if (err instanceof RealtimeError && err.code === "forbidden") showNoAccess();
 *   else throw err;
 * }
 * ```
 */
export class RealtimeError extends Error {
  /** The server's error code, or one of the client's own; see {@linkcode ClientErrorCode}. */
  readonly code: ClientErrorCode;
  /** Room the error is about, when there is one. */
  readonly room: string | undefined;
  /** For `rate_limited`: milliseconds to wait before publishing again. */
  readonly retryAfterMs: number | undefined;

  /**
   * @param code what went wrong, as a stable machine-readable code
   * @param message human-readable detail
   * @param options room, retryAfterMs and cause
   */
  constructor(code: ClientErrorCode, message: string, options: RealtimeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RealtimeError";
    this.code = code;
    this.room = options.room;
    this.retryAfterMs = options.retryAfterMs;
  }
}
