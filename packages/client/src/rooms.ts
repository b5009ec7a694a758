/**
 * The rooms one client has joined: each room's state ({@linkcode JoinedRoom})
 * and, in presence rooms, its member map ({@linkcode RoomPresence}). Both
 * leave together, so a left room keeps no stale presence.
 *
 * @module
 */
import type { ServerMessage } from "./wire.ts";
import { type PresenceChange, type PresenceSnapshot, RoomPresence } from "./presence.ts";
import type { JoinedRoom, RoomPosition } from "./room.ts";
import type { RoomHandler } from "./types.ts";

type PresenceFrame = Extract<ServerMessage, { type: "presence_state" | "presence_diff" }>;
type Handler = RoomHandler<never>;

/** The joined rooms of one client, by name. */
export class Rooms {
  readonly #joined = new Map<string, JoinedRoom<Handler>>();
  /** Presence rooms' member maps, for joined rooms only. */
  readonly #presence = new Map<string, RoomPresence>();

  /** Room names, in the order they were joined. */
  names(): string[] {
    return [...this.#joined.keys()];
  }

  /** One joined room's state. */
  get(room: string): JoinedRoom<Handler> | undefined {
    return this.#joined.get(room);
  }

  /** Records a room the server confirmed with `joined`. */
  add(room: string, joined: JoinedRoom<Handler>): void {
    this.#joined.set(room, joined);
  }

  /** Forgets a room and its presence; returns whether it was joined. */
  delete(room: string): boolean {
    this.#presence.delete(room);
    return this.#joined.delete(room);
  }

  /** Forgets every room. */
  clear(): void {
    this.#joined.clear();
    this.#presence.clear();
  }

  /** The last position seen in a history room. */
  position(room: string): RoomPosition | undefined {
    return this.#joined.get(room)?.position;
  }

  /** Whether `room` is a joined history room, whose publishes may be resent. */
  isHistory(room: string): boolean {
    return this.position(room) !== undefined;
  }

  /** The members of a presence room, once its first state arrived. */
  presence(room: string): PresenceSnapshot | undefined {
    return this.#presence.get(room)?.snapshot();
  }

  /**
   * Applies a presence frame of a joined room and returns the change, or
   * `undefined` when the frame is not usable (room not joined, or a diff
   * before the first state, which diffs are relative to).
   */
  applyPresence(message: PresenceFrame): PresenceChange | undefined {
    const room = message.room;
    if (!this.#joined.has(room)) return undefined;
    let view = this.#presence.get(room);
    if (view === undefined) {
      if (message.type !== "presence_state") return undefined;
      this.#presence.set(room, view = new RoomPresence());
    }
    return message.type === "presence_state" ? view.state(message) : view.diff(message);
  }
}
