/**
 * One presence room on the client: the member map kept from the server's
 * `presence_state` and `presence_diff` frames, so that the app reads who is
 * online without a round trip.
 *
 * @module
 */
import type { JsonValue, ServerMessage } from "./wire.ts";

/** One user in a presence room. */
export interface PresenceMember {
  userId: string;
  /** The user's token `info` claim, if it had one. */
  info?: { [key: string]: JsonValue };
  /**
   * The user's connections to the room, as of the last `presence_state`
   * (a user who joined since counts 1: diffs carry only first joins).
   */
  connections: number;
}

/** What changed in a room; passed to the client's `"presence"` listeners. */
export interface PresenceChange {
  /** Users who arrived (their first connection joined). */
  joins: { userId: string; info?: { [key: string]: JsonValue } }[];
  /** Users who left (their last connection went). */
  leaves: { userId: string }[];
  /** Users in the room now. */
  count: number;
}

/** The members of a presence room as the client knows them. */
export interface PresenceSnapshot {
  /** Known members, in the order the server listed them, then joined. */
  members: PresenceMember[];
  /** Users in the room (may exceed `members.length` when `truncated`). */
  count: number;
  /**
   * The room is above the server's `PRESENCE_MAX_MEMBERS`: `members` lists
   * only some, and only `count` follows changes until the room shrinks.
   */
  truncated: boolean;
}

type State = Extract<ServerMessage, { type: "presence_state" }>;
type Diff = Extract<ServerMessage, { type: "presence_diff" }>;
type Info = { [key: string]: JsonValue };

/** The client's view of one presence room. */
export class RoomPresence {
  readonly #members = new Map<string, PresenceMember>();
  #count = 0;
  #truncated = false;

  /**
   * Takes a `presence_state` (after a join, a rejoin, or when a large room
   * shrinks): replaces the view, and returns the change from the old one
   * (every member is a join on the first state).
   */
  state(message: State): PresenceChange {
    const before = new Map(this.#members);
    this.#members.clear();
    const joins: PresenceChange["joins"] = [];
    for (const m of message.members) {
      const member: PresenceMember = { userId: m.userId, connections: m.connections };
      if (m.info !== undefined) member.info = m.info as Info;
      this.#members.set(m.userId, member);
      if (!before.delete(m.userId)) joins.push(withInfo(m.userId, member.info));
    }
    this.#count = message.count;
    this.#truncated = message.truncated === true;
    const leaves = [...before.keys()].map((userId) => ({ userId }));
    return { joins, leaves, count: this.#count };
  }

  /** Takes a `presence_diff` and returns it as a change. */
  diff(message: Diff): PresenceChange {
    const joins: PresenceChange["joins"] = [];
    for (const j of message.joins) {
      const info = j.info as Info | undefined;
      const member: PresenceMember = { userId: j.userId, connections: 1 };
      if (info !== undefined) member.info = info;
      this.#members.set(j.userId, member);
      joins.push(withInfo(j.userId, info));
    }
    const leaves: PresenceChange["leaves"] = [];
    for (const l of message.leaves) {
      this.#members.delete(l.userId);
      leaves.push({ userId: l.userId });
    }
    this.#count = message.count;
    // A count-only diff means the room is (still) above the server's limit.
    if (message.joins.length === 0 && message.leaves.length === 0) {
      this.#truncated = this.#count !== this.#members.size;
    }
    return { joins, leaves, count: this.#count };
  }

  /** A copy of the current view. */
  snapshot(): PresenceSnapshot {
    return {
      members: [...this.#members.values()].map((m) => ({ ...m })),
      count: this.#count,
      truncated: this.#truncated,
    };
  }
}

function withInfo(userId: string, info: Info | undefined): PresenceChange["joins"][number] {
  return info === undefined ? { userId } : { userId, info };
}
