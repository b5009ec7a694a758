/**
 * One presence room as this node sees it: its local members (per user, per
 * connection), other nodes' users, and the batching of changes into one
 * {@linkcode PresenceDelta} per window (one timer at most), with truncation
 * above `maxMembers`. It knows neither the bus nor the store: the tracker
 * and its strategy feed it.
 *
 * @module
 */
import type { PresenceInfo } from "../auth.ts";
import type { Clock, TimerId } from "../../clock.ts";
import type { PresenceEntry } from "../../store/presence/types.ts";
import type {
  JoinedUser,
  PresenceDelta,
  PresenceMember,
  PresenceSnapshot,
  SnapshotEntry,
} from "./events.ts";

/** Least time between two count-only diffs of a room above `maxMembers`. */
export const LARGE_ROOM_DIFF_MS = 1000;

/** Timings shared by every view of a tracker. */
export interface ViewSettings {
  /** Trailing-edge batching window. */
  readonly diffMs: number;
  /** Users listed in a snapshot before it is truncated and deltas carry only the count. */
  readonly maxMembers: number;
  readonly clock: Clock;
}

/** One user's connections on this node. */
export interface LocalUser {
  /** Its connections to the room. */
  sessions: Set<PresenceMember>;
  /** The `info` of its latest joining connection. */
  info: PresenceInfo | undefined;
}

/**
 * A room with local members. Closed (`close`) when its last local member
 * leaves or the tracker closes; a closed view sends nothing more.
 */
export class RoomView {
  readonly room: string;
  /** This node's users. */
  readonly local = new Map<string, LocalUser>();
  /** Other nodes' users, as announced or stored. */
  readonly remote = new Map<string, Map<string, PresenceEntry>>();
  /** Every user in the room, in the order they joined (the truncated snapshot lists the first). */
  readonly users = new Map<string, PresenceEntry>();
  /**
   * States wait for a first read of the room (store-backed strategy); the
   * read's end calls {@linkcode RoomView.loaded}.
   */
  loading = false;
  /** `node\nuser` keys applied while a store read was in flight (that read is older). */
  touched: Set<string> | null = null;
  readonly #settings: ViewSettings;
  /** Sessions that have their snapshot and receive deltas. */
  readonly #listeners = new Set<PresenceMember>();
  /** Sessions that get their snapshot at the end of the current window. */
  readonly #waiting = new Set<PresenceMember>();
  /** Changes of the current window (cancelling pairs removed). */
  readonly #joins = new Map<string, PresenceInfo | undefined>();
  readonly #leaves = new Set<string>();
  /** The window's changes outgrew `maxMembers`: everyone gets a fresh snapshot instead. */
  #resync = false;
  #timer: TimerId | undefined;
  #lastFlush = -Infinity;
  /** Whether the room was above `maxMembers` at the last flush. */
  #large = false;
  #lastCount = 0;
  #closed = false;

  /** @param room the room @param settings the tracker's timings */
  constructor(room: string, settings: ViewSettings) {
    this.room = room;
    this.#settings = settings;
  }

  /** Whether a batching timer is pending. */
  get pending(): boolean {
    return this.#timer !== undefined;
  }

  /** Whether the view was closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Adds a local connection; false if it was already there. It gets its
   * snapshot at once when nothing is pending, else at the end of the window,
   * so that the deltas it receives afterwards start exactly where it ends.
   */
  add(member: PresenceMember): boolean {
    const userId = member.userId;
    let user = this.local.get(userId);
    if (user === undefined) this.local.set(userId, user = { sessions: new Set(), info: undefined });
    if (user.sessions.has(member)) return false;
    user.sessions.add(member);
    // The latest joining connection's token speaks for the user (a refreshed `info`).
    user.info = member.presenceInfo;
    this.recount(userId);
    this.#waiting.add(member);
    if (this.#timer === undefined && !this.loading) this.#sendSnapshots();
    return true;
  }

  /** Removes a local connection; false if it was not there. */
  remove(member: PresenceMember): boolean {
    const userId = member.userId;
    const user = this.local.get(userId);
    if (user === undefined || !user.sessions.delete(member)) return false;
    this.#listeners.delete(member);
    this.#waiting.delete(member);
    if (user.sessions.size === 0) this.local.delete(userId);
    this.recount(userId);
    return true;
  }

  /** This node's entry for `userId` (`connections: 0` when it has none). */
  localEntry(userId: string): PresenceEntry {
    const user = this.local.get(userId);
    const entry: PresenceEntry = { connections: user?.sessions.size ?? 0 };
    if (user?.info !== undefined) entry.info = user.info;
    return entry;
  }

  /** Sets what `node` has of `userId` here (`connections <= 0`: nothing). */
  applyRemote(
    node: string,
    userId: string,
    connections: number,
    info: PresenceInfo | undefined,
  ): void {
    this.touched?.add(`${node}\n${userId}`);
    let users = this.remote.get(node);
    if (connections <= 0) {
      if (users === undefined || !users.delete(userId)) return;
      if (users.size === 0) this.remote.delete(node);
    } else {
      if (users === undefined) this.remote.set(node, users = new Map());
      const entry: PresenceEntry = { connections };
      if (info !== undefined) entry.info = info;
      users.set(userId, entry);
    }
    this.recount(userId);
  }

  /** Drops every user `node` had here. */
  forget(node: string): void {
    for (const userId of [...this.remote.get(node)?.keys() ?? []]) {
      this.applyRemote(node, userId, 0, undefined);
    }
  }

  /** Recomputes one user's total and records a join or leave when it crosses zero. */
  recount(userId: string): void {
    const local = this.local.get(userId);
    let connections = local?.sessions.size ?? 0;
    let info = local?.info;
    for (const users of this.remote.values()) {
      const entry = users.get(userId);
      if (entry === undefined) continue;
      connections += entry.connections;
      info ??= entry.info;
    }
    const known = this.users.get(userId);
    if (connections === 0) {
      if (known === undefined) return;
      this.users.delete(userId);
      if (!this.#joins.delete(userId)) this.#leaves.add(userId);
    } else if (known === undefined) {
      const entry: PresenceEntry = { connections };
      if (info !== undefined) entry.info = info;
      this.users.set(userId, entry);
      if (!this.#leaves.delete(userId)) this.#joins.set(userId, info);
    } else {
      known.connections = connections;
      if (info === undefined) delete known.info;
      else known.info = info;
      return;
    }
    if (this.#joins.size + this.#leaves.size > this.#settings.maxMembers) {
      // A storm: the details would cost more than a fresh snapshot, so keep none.
      this.#joins.clear();
      this.#leaves.clear();
      this.#resync = true;
    }
    this.#schedule();
  }

  /** The room's users now (answering request `requestId`, if any). */
  snapshot(requestId?: string): PresenceSnapshot {
    const entries: SnapshotEntry[] = [];
    const max = this.#settings.maxMembers;
    for (const [userId, entry] of this.users) {
      if (entries.length >= max) break;
      entries.push(
        entry.info === undefined
          ? { userId, connections: entry.connections }
          : { userId, info: entry.info, connections: entry.connections },
      );
    }
    const count = this.users.size;
    const snapshot: PresenceSnapshot = {
      kind: "snapshot",
      room: this.room,
      entries,
      count,
      truncated: count > max,
    };
    return requestId === undefined ? snapshot : { ...snapshot, requestId };
  }

  /** The first read is done (store-backed): flush now rather than at the window's end. */
  loaded(): void {
    if (!this.loading || this.#closed) return;
    this.loading = false;
    this.#clearTimer();
    this.#flush();
  }

  /** Stops the timer; the view sends nothing more. */
  close(): void {
    this.#closed = true;
    this.#clearTimer();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#settings.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#closed) return;
    const { clock, diffMs, maxMembers } = this.#settings;
    let delay = diffMs;
    if (this.#large || this.users.size > maxMembers) {
      delay = Math.max(delay, this.#lastFlush + LARGE_ROOM_DIFF_MS - clock.now());
    }
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, delay);
  }

  #flush(): void {
    if (this.#closed || this.loading) return; // the load flushes when it is done
    const count = this.users.size;
    const large = count > this.#settings.maxMembers;
    if (large) {
      if (count !== this.#lastCount || !this.#large) {
        this.#broadcast({ kind: "delta", room: this.room, joined: [], left: [], count });
      }
    } else if (this.#large || this.#resync) {
      // Count-only deltas left the listeners without names: give them the list again.
      this.#broadcast(this.snapshot());
    } else if (this.#joins.size > 0 || this.#leaves.size > 0) {
      this.#sendDeltas(count);
    }
    this.#joins.clear();
    this.#leaves.clear();
    this.#resync = false;
    this.#lastFlush = this.#settings.clock.now();
    this.#large = large;
    this.#lastCount = count;
    this.#sendSnapshots();
  }

  #sendDeltas(count: number): void {
    const joined: JoinedUser[] = [...this.#joins].map(([userId, info]) =>
      info === undefined ? { userId } : { userId, info }
    );
    const left = [...this.#leaves];
    const delta: PresenceDelta = { kind: "delta", room: this.room, joined, left, count };
    for (const member of this.#listeners) {
      // A connection never hears of its own user's join: it is in its snapshot.
      if (!this.#joins.has(member.userId)) member.presence(delta);
      else {
        const others = joined.filter((j) => j.userId !== member.userId);
        if (others.length > 0 || left.length > 0) member.presence({ ...delta, joined: others });
      }
    }
  }

  #broadcast(event: PresenceSnapshot | PresenceDelta): void {
    for (const member of this.#listeners) member.presence(event);
  }

  #sendSnapshots(): void {
    if (this.#waiting.size === 0) return;
    const snapshot = this.snapshot();
    for (const member of this.#waiting) {
      member.presence(snapshot);
      this.#listeners.add(member);
    }
    this.#waiting.clear();
  }
}
