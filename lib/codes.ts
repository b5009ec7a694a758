/**
 * Every closed set of codes the server speaks: protocol error codes, WebSocket
 * close codes and the reasons an HTTP handshake is refused. Kept in one file so
 * that clients, docs and tests have a single list to read.
 *
 * @module
 */

/** Codes carried by `{"type":"error","code":...}` frames. */
export const ErrorCode = {
  /** Not JSON, fails the schema, binary frame, `__proto__` key. */
  BadRequest: "bad_request",
  /** The token or room policy does not grant this room (join or publish). */
  Forbidden: "forbidden",
  /** Publish or leave for a room the connection has not joined. */
  NotJoined: "not_joined",
  /** The user's message bucket is empty; see `retryAfterMs`. */
  RateLimited: "rate_limited",
  /** The connection already holds `MAX_ROOMS_PER_CONNECTION` rooms. */
  TooManyRooms: "too_many_rooms",
  /** A `refresh` token failed verification; the connection keeps its old expiry. */
  Unauthorized: "unauthorized",
  /** The message could not be carried to other instances (too large for the bus). */
  PayloadTooLarge: "payload_too_large",
  /**
   * The history store cannot be reached: a message to a history room was
   * stored and delivered nowhere; retry after `retryAfterMs` (with the same `id`).
   */
  Unavailable: "unavailable",
  /** Something failed on our side; the request had no effect. */
  Internal: "internal",
  /** `rpc`: no such method (the backend said so), or no RPC backend is configured. */
  NotFound: "not_found",
  /** `rpc`: the backend answered the call with an error; `message` is the backend's. */
  RpcError: "rpc_error",
} as const;

/** One of {@linkcode ErrorCode}'s values. */
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode];

/** WebSocket close codes the server sends. */
export const CloseCode = {
  /** The client or server closed normally. */
  Normal: 1000,
  /** Server going away (shutdown, deploy): reconnect elsewhere. */
  GoingAway: 1001,
  /** Policy violation: the client does not read fast enough (slow consumer). */
  PolicyViolation: 1008,
  /** A frame over `MAX_MESSAGE_BYTES`. */
  MessageTooBig: 1009,
  /** Unexpected server error. */
  InternalError: 1011,
  /**
   * This instance is being replaced (a Deno Deploy eviction): reconnect at
   * once; the connection lands on another instance.
   */
  ServiceRestart: 1012,
  /**
   * A recovery could not be completed (the history store failed mid-replay):
   * reconnect and rejoin with the last offset received.
   */
  TryAgainLater: 1013,
  /** The token expired without a successful `refresh`. Do not reconnect with the same token. */
  TokenExpired: 4401,
  /**
   * A `refresh` token named another user, or the user or token was revoked
   * (reason `revoked`). Do not reconnect with the same token.
   */
  Forbidden: 4403,
  /** The connection kept flooding after being told it was rate limited. */
  RateLimited: 4429,
} as const;

/** One of {@linkcode CloseCode}'s values. */
export type CloseCode = typeof CloseCode[keyof typeof CloseCode];

/**
 * Why a handshake was refused, in the audit log (`handshake_refused`), where
 * the HTTP status and body alone do not say it precisely.
 */
export const RefusalReason = {
  /**
   * A cookie credential from an origin that is neither the server's own nor
   * listed by name in `ALLOWED_ORIGINS` (cross-site WebSocket hijacking); 403.
   */
  CookieCrossOrigin: "cookie_cross_origin",
} as const;

/** One of {@linkcode RefusalReason}'s values. */
export type RefusalReason = typeof RefusalReason[keyof typeof RefusalReason];

/**
 * Why an authentication attempt failed. Goes to the audit log and metrics only:
 * the HTTP answer is the same generic 401 for all of them (RFC 6750), so that a
 * caller cannot probe which check failed.
 */
export type AuthFailureReason =
  | "missing"
  | "malformed"
  | "too_long"
  | "expired"
  | "not_yet_valid"
  | "bad_signature"
  | "bad_api_key"
  | "alg_not_allowed"
  | "claim_invalid"
  /** A claim the server reads has the wrong shape or size (the presence `info` claim). */
  | "bad_claims"
  | "unknown_key"
  | "key_unavailable"
  | "ticket_invalid"
  | "ticket_origin_mismatch"
  /** The user or the token was revoked (`POST /api/revoke`). */
  | "revoked";
