/**
 * The data the client hands to apps: connection states, room messages,
 * history pages, join and history options, and what a `welcome` reported.
 *
 * @module
 */
import type { JsonValue } from "./wire.ts";

/** Where the client is in its connection lifecycle; see {@linkcode RealtimeClient.state}. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/** A room message as delivered to a {@linkcode RoomHandler}. */
export interface RoomMessage<T = JsonValue> {
  /** Always `"message"`. */
  type: "message";
  /** The room it was published to. */
  room: string;
  /** What the publisher passed to `publish`. */
  payload: T;
  /** The publisher's user id; your own messages come back to you too. */
  from: string;
  /** Server time of publication, in milliseconds since the epoch. */
  ts: number;
  /** History rooms: the message's place in the room's stream (1, 2, 3, … per epoch). */
  offset?: number;
  /** History rooms: the stream the offset counts in. */
  epoch?: string;
}

/** Options for {@linkcode RealtimeClient.join}. */
export interface JoinOptions {
  /**
   * In a history room, rejoin after a reconnect with the last offset seen,
   * so that the server replays exactly what was missed.
   * @default {true}
   */
  recover?: boolean;
}

/** Options for {@linkcode RealtimeClient.history}. */
export interface HistoryOptions {
  /** Most messages, 1–1000. @default {100} */
  limit?: number | undefined;
  /** Only messages older than this offset (page backwards with the first offset of a page). */
  before?: number | undefined;
}

/** A page of a history room's past; see {@linkcode RealtimeClient.history}. */
export interface HistoryPage<T = JsonValue> {
  /** Oldest first, exactly as members received them. */
  messages: RoomMessage<T>[];
  /** The room's current position. */
  offset: number;
  /** The stream's epoch. */
  epoch: string;
  /** Whether older messages are still kept. */
  more: boolean;
}

/**
 * Receives a joined room's messages. The payload type is the caller's claim,
 * not checked at runtime: validate it if other users can publish to the room.
 */
export type RoomHandler<T = JsonValue> = (payload: T, message: RoomMessage<T>) => void;

/** What the server said in its `welcome`; passed to `"open"` listeners. */
export interface WelcomeInfo {
  /** This connection's id on the server (new on every reconnect). */
  connectionId: string;
  /** The authenticated user. */
  userId: string;
  /** Token expiry in seconds since the epoch, or `null` if it never expires. */
  expiresAt: number | null;
  /** The server instance that accepted the connection. */
  instanceId: string;
  /** True when this is not the first connection of this client. */
  reconnected: boolean;
}

/** Why a room was left without the app calling `leave`; see the `"left"` event. */
export type LeftReason = "revoked" | "rejoin_failed";
