/**
 * The SDK's one error class: what the server answered when it refused a
 * call, or why no answer came.
 *
 * @module
 */

/** Extra fields of a {@linkcode RealtimeApiError}. */
export interface RealtimeApiErrorOptions {
  /** The HTTP status, 0 when no response came (network failure, timeout). */
  status: number;
  /** From a 503 or 429: what the server's `Retry-After` asked, in milliseconds. */
  retryAfterMs?: number | undefined;
  /** The underlying failure. */
  cause?: unknown;
}

/**
 * A call the server refused or that got no answer. Switch on `code`: the
 * server's error code (`bad_request`, `unauthorized`, `forbidden`,
 * `not_found`, `payload_too_large`, `unavailable`, …), or the SDK's own
 * `network` (no response) and `timeout`.
 *
 * @example
 * ```ts ignore
 * try {
 *   await api.publish("chat:lobby", { text: "hi" });
 * } catch (err) {
 *   if (err instanceof RealtimeApiError && err.code === "unavailable") retryLater(err.retryAfterMs);
 * }
 * ```
 */
export class RealtimeApiError extends Error {
  /** The server's error code, or `network` / `timeout`. */
  readonly code: string;
  /** The HTTP status; 0 when no response came. */
  readonly status: number;
  /** From a 503 or 429: how long the server asked to wait, in ms. */
  readonly retryAfterMs: number | undefined;

  /**
   * @param code machine-readable code
   * @param message the server's message or the SDK's
   * @param options status, retryAfterMs, cause
   */
  constructor(code: string, message: string, options: RealtimeApiErrorOptions) {
    super(
      message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "RealtimeApiError";
    this.code = code;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
  }
}
