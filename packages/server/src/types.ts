/**
 * What the server's HTTP API takes and answers, as the SDK types it.
 *
 * @module
 */

/** Options for `publish`. */
export interface PublishOptions {
  /**
   * Deduplicates retries: a publish with the same key within the server's
   * `DEDUP_WINDOW_SEC` is delivered once (1–128 characters).
   */
  idempotencyKey?: string;
}

/** What `publish` resolves with. */
export interface PublishResult {
  /** Members reached on the node that answered. */
  recipients: number;
  /** History rooms: the message's offset. */
  offset?: number;
  /** History rooms: the stream's epoch. */
  epoch?: string;
  /** True when this was a repeat of an `idempotencyKey` and was not delivered again. */
  duplicate: boolean;
}

/** Who to revoke: a user (every token issued up to now) or one token. */
export type RevokeTarget = { userId: string; jti?: never } | {
  jti: string;
  userId?: never;
};

/** Options for `revoke`. */
export interface RevokeOptions {
  /** Why, for the audit log and the list (at most the server's limit). */
  reason?: string;
  /** When the revocation lapses, in seconds since the epoch (future, at most 366 days ahead). */
  untilSec?: number;
}

/** What `revoke` resolves with. */
export interface RevokeResult {
  /** Connections closed on the node that answered (others close theirs too). */
  closed: number;
  /** When it lapses, in seconds since the epoch. */
  until: number;
}

/** One revocation in force. */
export interface Revocation {
  userId?: string;
  jti?: string;
  /** Seconds since the epoch. */
  revokedAt: number;
  /** Seconds since the epoch. */
  until: number;
  /** Who revoked it. */
  by: string;
  reason?: string;
}

/** What `revocations` resolves with. */
export interface RevocationList {
  revocations: Revocation[];
  /** How many are in force (the list may be cut at `limit`). */
  total: number;
}

/** Options for `history`. */
export interface HistoryOptions {
  /** Most messages, 1–1000. @default 100 */
  limit?: number;
  /** Only messages older than this offset. */
  before?: number;
}

/** A room message as members receive it. */
export interface HistoryMessage<T = unknown> {
  type: "message";
  room: string;
  payload: T;
  /** The publisher: a user id, or the API caller (`"server"` for the API key). */
  from: string;
  /** Server time of publication, ms since the epoch. */
  ts: number;
  offset: number;
  epoch: string;
}

/** What `history` resolves with. */
export interface HistoryPage<T = unknown> {
  /** Oldest first. */
  messages: HistoryMessage<T>[];
  /** The room's current offset. */
  offset: number;
  epoch: string;
  /** Whether older messages are still kept. */
  more: boolean;
}

/** One user in a presence room. */
export interface PresenceEntry {
  userId: string;
  /** The token's `info` claim, when it had one. */
  info?: Record<string, unknown>;
  /** The user's connections to the room, on every node. */
  connections: number;
}

/** What `presence` resolves with. */
export interface PresenceList {
  room: string;
  members: PresenceEntry[];
  /** Users in the room. */
  count: number;
}
