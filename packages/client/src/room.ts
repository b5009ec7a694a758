/**
 * One joined room on the client: its handlers (one per subscription) and, in a history room, the
 * stream position it has seen, so that a rejoin can ask the server for
 * exactly what was missed (`since`) and a replayed message is never handed
 * to the app twice.
 *
 * @module
 */
import type { ServerMessage } from "./wire.ts";

/** A position in a history room's stream, as the server reports it. */
export interface RoomPosition {
  /** Offset of the last message seen (0: none yet). */
  offset: number;
  /** The stream it counts in; a new epoch means the server lost the past. */
  epoch: string;
}

/** What a rejoin after a reconnect achieved; see the client's `"rejoin"` event. */
export interface RejoinInfo {
  /** True when every message missed while disconnected was replayed. */
  recovered: boolean;
  /** How many messages were replayed (0 when not recovered). */
  missed: number;
}

type Joined = Extract<ServerMessage, { type: "joined" }>;

/** The client's state for one joined room. */
export class JoinedRoom<H> {
  /** Receive the room's messages, in the order they subscribed. */
  readonly handlers: Set<H> = new Set();
  /** Whether rejoins ask to recover missed messages. */
  readonly recover: boolean;
  #position: RoomPosition | undefined;

  /** @param handler the first subscription's handler @param recover send `since` on rejoins */
  constructor(handler: H, recover: boolean) {
    this.handlers.add(handler);
    this.recover = recover;
  }

  /** The last position seen, in a history room. */
  get position(): RoomPosition | undefined {
    return this.#position === undefined ? undefined : { ...this.#position };
  }

  /** What a rejoin sends as `since`, when recovery is on and a position is known. */
  since(): RoomPosition | undefined {
    return this.recover ? this.position : undefined;
  }

  /**
   * Takes the server's `joined`. A recovered rejoin keeps the old position:
   * the replayed messages that follow advance it one by one.
   */
  joined(reply: Joined): RejoinInfo {
    if (reply.recovered === true) return { recovered: true, missed: reply.missed ?? 0 };
    if (reply.offset !== undefined && reply.epoch !== undefined) {
      this.#position = { offset: reply.offset, epoch: reply.epoch };
    }
    return { recovered: false, missed: 0 };
  }

  /**
   * Whether a room message is new. Advances the position for history
   * messages; refuses one at or below it in the same epoch (already handled).
   */
  accept(message: { offset?: number | undefined; epoch?: string | undefined }): boolean {
    const { offset, epoch } = message;
    if (offset === undefined || epoch === undefined) return true;
    const seen = this.#position;
    if (seen !== undefined && seen.epoch === epoch && offset <= seen.offset) return false;
    this.#position = { offset, epoch };
    return true;
  }
}

const ROOM_PATTERN = /^[A-Za-z0-9_\-.:@/]{1,128}$/;

/**
 * Checks a room name before it is sent.
 *
 * @param operation what was attempted, for the message ("join room", "publish")
 * @param room the name to check
 * @throws {TypeError} when `room` is not 1–128 of `A-Z a-z 0-9 _ - . : @ /`
 */
export function assertRoomName(operation: string, room: string): void {
  if (typeof room !== "string" || !ROOM_PATTERN.test(room)) {
    throw new TypeError(
      `Cannot ${operation}: room must be 1-128 characters of A-Z a-z 0-9 _ - . : @ /, current value is ${
        JSON.stringify(room)
      }`,
    );
  }
}
