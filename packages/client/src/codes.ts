/**
 * The client's vocabulary of codes: the error codes a `RealtimeError`
 * can carry, the close codes the client sends itself, and the server's close
 * codes its reconnect decision turns on.
 *
 * Values here are literals, because the package may not import the server's
 * modules; `wire.ts` holds the server's code sets, checked equal to the
 * server's `lib/codes.ts` by `tests/client_wire_test.ts`.
 *
 * @module
 */
import type { CloseCode, ErrorCode } from "./wire.ts";

/**
 * Codes a `RealtimeError` can carry: every server error code plus
 * the ones the client raises itself.
 *
 * - `timeout`: no reply within `requestTimeoutMs` (queue time included).
 * - `queue_full`: the request was made while disconnected and `maxQueue`
 *   requests were already waiting.
 * - `disconnected`: a `publish` to a room without history was on the wire
 *   when the connection dropped; it may or may not have been delivered, so it
 *   is not resent. (In a history room it is resent with the same `id` after
 *   the rejoin, and the server delivers it at most once.)
 * - `closed`: `RealtimeClient.close` was called, or the client gave
 *   up reconnecting (4401/4403 without a token function, or a server 1000).
 * - `handshake_failed`: several connection attempts in a row ended before the
 *   server's `welcome`; browsers cannot see why, but it usually means the
 *   credentials were refused. The client keeps retrying.
 * - `token_failed`: the `token` or `ticket` function threw or rejected.
 * - `bad_frame`: the server sent something that is not a JSON object with a `type`.
 */
export type ClientErrorCode =
  | ErrorCode
  | "timeout"
  | "queue_full"
  | "disconnected"
  | "closed"
  | "handshake_failed"
  | "token_failed"
  | "bad_frame";

/**
 * Close codes the client itself reports to `"close"` listeners (and sends to
 * the server) when it gives up on a socket that is still technically open.
 */
export const ClientCloseCode = {
  /** No `pong` within `pongTimeoutMs`, or no `welcome` within `connectTimeoutMs`. */
  DeadConnection: 4000,
} as const;

/** The server is done with us: never reconnect. */
export const CLOSE_NORMAL = 1000 satisfies CloseCode;
/** The token expired: reconnect only with a fresh credential. */
export const CLOSE_TOKEN_EXPIRED = 4401 satisfies CloseCode;
/** The credential was refused: reconnect only with a fresh one. */
export const CLOSE_FORBIDDEN = 4403 satisfies CloseCode;
