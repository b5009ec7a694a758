/**
 * Pusher's close and error codes (protocol v7), as `pusher-js` and the other
 * official clients act on them: 4000-4099 stop for good, 4100-4199 back off
 * and reconnect, 4200-4299 reconnect at once, 4300-4399 are errors that
 * leave the connection open.
 *
 * @module
 */
import { CloseCode } from "../../codes.ts";

/** Codes of `pusher:error` frames and close frames on `/app/{key}`. */
export const PusherCode = {
  /** No app has this key. */
  UnknownApp: 4001,
  /** The app is disabled. */
  AppDisabled: 4003,
  /** The app's `maxConnections` is reached. */
  AppOverQuota: 4004,
  /** The path is not `/app/{key}`. */
  PathNotFound: 4005,
  /** The `protocol` query parameter is not a number. */
  InvalidVersion: 4006,
  /** The protocol version is not 7. */
  UnsupportedVersion: 4007,
  /** No `protocol` query parameter. */
  NoVersion: 4008,
  /** The connection is not (or no longer) authorised: a bad signin, a terminated user, a revocation. */
  Unauthorized: 4009,
  /** The server is over capacity (`MAX_CONNECTIONS`), or the client does not read: back off. */
  OverCapacity: 4100,
  /** Reconnect now (server shutdown). */
  Reconnect: 4200,
  /** No pong within the activity timeout. */
  PongNotReceived: 4201,
  /** Client event refused (rate limit, disabled, too large); the connection stays open. */
  ClientEventRejected: 4301,
  /** A server-side failure answering a request; the connection stays open. */
  ServerError: 4302,
} as const;

/** One of {@linkcode PusherCode}'s values. */
export type PusherCode = typeof PusherCode[keyof typeof PusherCode];

/** The protocol version this front door speaks. */
export const PUSHER_PROTOCOL = 7;

/**
 * The Pusher close code for a close the core asked for, so that a Pusher
 * client does what the core meant: reconnect at once after a shutdown, back
 * off when it was too slow, stop when it was revoked.
 */
export function pusherCloseCode(code: number): number {
  switch (code) {
    case CloseCode.GoingAway:
    case CloseCode.ServiceRestart:
    case CloseCode.TryAgainLater:
      return PusherCode.Reconnect;
    case CloseCode.PolicyViolation:
    case CloseCode.InternalError:
      return PusherCode.OverCapacity;
    case CloseCode.Forbidden:
    case CloseCode.TokenExpired:
      return PusherCode.Unauthorized;
    case CloseCode.RateLimited:
      return PusherCode.ClientEventRejected;
    default:
      return code;
  }
}
