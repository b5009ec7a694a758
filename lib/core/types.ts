/**
 * The vocabulary between the protocol-neutral session core and the protocol
 * adapters at the edge: the services a session uses, what the core tells its
 * adapter ({@linkcode SessionPort}), and how operations answer
 * ({@linkcode Outcome}). Nothing here knows a wire format.
 *
 * @module
 */
import type { AuditSink } from "../audit.ts";
import type { PresenceInfo, TokenVerifier } from "./auth.ts";
import type { Clock } from "../clock.ts";
import type { ErrorCode } from "../codes.ts";
import type { TokenSource } from "../http/handshake.ts";
import type { HistoryReader } from "./history_reader.ts";
import type { Counters } from "../metrics.ts";
import type { PresenceEvent, PresenceTracker } from "./presence/mod.ts";
import type { RateLimiter } from "./rate_limiter.ts";
import type { RoomAccess, RoomPolicy } from "./room_policy.ts";
import type { RoomManager } from "./rooms.ts";
import type { CoreSession } from "./session.ts";
import type { JoinHook } from "./join_hook.ts";
import type { BackendHooks } from "./publish_hook.ts";

/** Limits a session enforces, from the config. */
export interface SessionLimits {
  readonly maxMessageBytes: number;
  /** `MAX_PAYLOAD_DEPTH`: deeper payloads are refused with `bad_request`. */
  readonly maxPayloadDepth: number;
  readonly maxRoomsPerConnection: number;
  readonly maxBufferedBytes: number;
  /** How long a recovery's replay waits for a socket that reads nothing (`HEARTBEAT_MS`). */
  readonly replayStallMs: number;
  readonly maxViolations: number;
  readonly expiryWarningMs: number;
}

/** Shared services a session uses; owned by the server. */
export interface CoreContext {
  readonly rooms: RoomManager;
  /** Answers `history` requests. */
  readonly history: HistoryReader;
  /** Presence rooms' members; absent when no room can track presence. */
  readonly presence?: PresenceTracker;
  readonly limiter: RateLimiter;
  readonly verifier: TokenVerifier;
  readonly policy: RoomPolicy;
  readonly clock: Clock;
  readonly audit: AuditSink;
  readonly counters: Counters;
  readonly instanceId: string;
  readonly limits: SessionLimits;
  /** Rooms neither the token nor the policy grants: the join hook, or denied. */
  readonly joins: JoinHook;
  /** The publish and RPC hooks. */
  readonly backend: BackendHooks;
  /** Called exactly once when the session ends, with its close code and reason. */
  onEnd(session: CoreSession, code: number, reason: string): void;
}

/** Facts about the handshake, for the session and the audit log. */
export interface SessionInfo {
  readonly ip: string;
  readonly origin: string | null;
  /** Where the credential was found; `pusher` for the Pusher front door, which has none. */
  readonly source: TokenSource | "pusher";
  /** Opt-in write coalescing (`?batch=1`), for a protocol that offers it. */
  readonly batch: boolean;
  /** The session's id, when the handshake chose it (a hook was told it); else a random one. */
  readonly connectionId?: string;
  /** What the connect hook granted; a refresh keeps it. */
  readonly connectGrant?: ConnectGrant;
}

/** What the connect hook granted a connection beyond its token. */
export interface ConnectGrant {
  /** Room patterns granting join and publish, added to the token's `rooms`. */
  readonly rooms?: readonly string[];
  /** Presence info, in place of the token's `info` claim. */
  readonly info?: PresenceInfo;
}

/**
 * What the core tells its protocol adapter. The core calls these only while
 * the session is alive; none may throw.
 */
export interface SessionPort {
  /**
   * A room message, as the room stores and carries it: the same string goes
   * to every member, so an adapter whose wire format differs translates it
   * once per message, not once per member.
   */
  deliver(frame: string): void;
  /** A presence event of one of the session's rooms (the same object for every member). */
  presence(event: PresenceEvent): void;
  /** The token expires at `expiresAt` (seconds) unless refreshed. */
  expiring(expiresAt: number): void;
  /** A refresh took `room` away: the session is no longer a member. */
  revoked(room: string): void;
  /** Writes whatever the adapter holds back (before a replay is paced). */
  flush(): void;
  /** Closes the transport; the core ends the session right after. */
  close(code: number, reason: string): void;
  /** Bytes written to the transport and not yet to the network (live). */
  readonly bufferedAmount: number;
  /** True once the transport is fully closed. */
  readonly closed: boolean;
}

/** Why an operation was refused, for the adapter to answer in its own words. */
export interface SessionError {
  readonly code: ErrorCode;
  /** Human-readable. */
  readonly message: string;
  /** The room it concerns, when the refusal is about one. */
  readonly room?: string;
  /** When the client may try again (rate limited, store unavailable). */
  readonly retryAfterMs?: number;
}

/** How an operation ended: its value, or a refusal to answer. */
export type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: SessionError };

/**
 * Receives an operation's outcome, synchronously when it is known at once.
 * Never called when the operation ended the session instead (flooding, a
 * slow consumer, a refresh naming another user): there is no one to answer.
 */
export type Answer<T> = (outcome: Outcome<T>) => void;

/**
 * A join on the adapter's terms, for a protocol that authorises rooms by its
 * own means (Pusher's channel signatures) and names presence members itself.
 * The native protocol passes none: its rooms are the token's and the room
 * policy's, default deny.
 */
export interface JoinGrant {
  /**
   * The access the adapter granted after checking its protocol's proof; it
   * replaces the room policy's answer for this membership.
   */
  readonly access?: RoomAccess;
  /** Who presence shows for this membership, when not the principal. */
  readonly as?: { readonly userId: string; readonly info?: PresenceInfo };
}
