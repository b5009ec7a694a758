/**
 * What presence tells a member, in words of the core: a snapshot of a room's
 * users, or the users who joined and left since. No wire format here: each
 * protocol's codec turns these events into its own frames (the native one:
 * `encodePresence` in `lib/protocols/native/protocol.ts`).
 *
 * @module
 */
import type { PresenceInfo } from "../auth.ts";

/** One user in a {@linkcode PresenceSnapshot}. */
export interface SnapshotEntry {
  readonly userId: string;
  /** The `info` claim of the user's latest joining connection, if it had one. */
  readonly info?: PresenceInfo;
  /** The user's connections to the room, across every node. */
  readonly connections: number;
}

/** A user whose first connection joined the room. */
export interface JoinedUser {
  readonly userId: string;
  readonly info?: PresenceInfo;
}

/** The room's users, the first `maxMembers` of them when it has more. */
export interface PresenceSnapshot {
  readonly kind: "snapshot";
  readonly room: string;
  /** The id of the request this answers, if any. */
  readonly requestId?: string;
  /** In the order the users joined. */
  readonly entries: readonly SnapshotEntry[];
  /** The true number of users. */
  readonly count: number;
  /** Whether `entries` lists fewer users than `count`. */
  readonly truncated: boolean;
}

/**
 * Users whose first connection joined, or last left, since the last event.
 * In a room above `maxMembers` both lists are empty and only `count` moves.
 */
export interface PresenceDelta {
  readonly kind: "delta";
  readonly room: string;
  readonly joined: readonly JoinedUser[];
  /** User ids. */
  readonly left: readonly string[];
  readonly count: number;
}

/** What a presence member receives. */
export type PresenceEvent = PresenceSnapshot | PresenceDelta;

/** A connection as presence sees it: a session of any protocol. */
export interface PresenceMember {
  /** The user id; presence counts users, not connections. */
  readonly userId: string;
  /** The token's `info` claim, if any. */
  readonly presenceInfo: PresenceInfo | undefined;
  /**
   * Receives one event; must not throw. The same event object goes to every
   * member it concerns, so a codec may encode it once.
   */
  presence(event: PresenceEvent): void;
}
