/**
 * Presence: who is in each presence room, per user, across every instance.
 * The {@linkcode PresenceTracker} is owned by the server and fed by sessions
 * (join, leave, end); it keeps one view per room with local members, batches
 * changes into `presence_diff` frames at the trailing edge of a
 * `PRESENCE_DIFF_MS` window (one timer per room at most), and tells other
 * instances about its own members.
 *
 * Across instances:
 * - Each instance announces its own users' connection counts on the room's
 *   bus channel (system envelopes of kind `presence`) and writes them to the
 *   {@linkcode PresenceStore} as entries per (room, instance).
 * - Shared store (Redis): a room's view is loaded from the store when it gets
 *   its first local member and reconciled with it at every heartbeat; an
 *   instance whose entries stopped being refreshed is dropped (its users leave).
 * - Per-isolate store: an instance that gets its first member in a room asks
 *   the others there for their state (`ask`); every instance heartbeats on
 *   the reserved room `$presence`; one not heard from for `PRESENCE_TTL_MS` is
 *   dropped.
 *
 * @module
 */
import type { PresenceInfo } from "./auth.ts";
import type { Bus, Envelope } from "./bus/types.ts";
import type { Clock, TimerId } from "./clock.ts";
import { systemClock } from "./clock.ts";
import { encode, type PresenceMember as WireMember } from "./protocol.ts";
import type { PresenceEntry, PresenceStore, RoomEntries } from "./store/presence/types.ts";

/** The system envelope kind of presence traffic. */
export const PRESENCE_KIND = "presence";
/** The reserved room heartbeats travel on (client room names cannot contain `$`). */
export const PRESENCE_SYSTEM_ROOM = "$presence";
/** Least time between two count-only diffs of a room above `maxMembers`. */
export const LARGE_ROOM_DIFF_MS = 1000;
/** Longest wait between liveness checks of other instances. */
const MAX_CHECK_MS = 1000;

/** A connection as presence sees it: a session. */
export interface PresenceMember {
  /** The user id; presence counts users, not connections. */
  readonly userId: string;
  /** The token's `info` claim, if any. */
  readonly presenceInfo: PresenceInfo | undefined;
  /** Sends one serialized frame; must not throw. */
  send(frame: string): void;
}

/** Options for {@linkcode PresenceTracker}. */
export interface PresenceTrackerOptions {
  /** Carries announcements to other instances; `instanceId` names this one. */
  bus: Bus;
  /** Where this instance's entries are written and others' are read. */
  store: PresenceStore;
  /** Whether a room tracks presence (`PRESENCE` and the policy's `presence` rules). */
  enabled(room: string): boolean;
  /** Trailing-edge batching window. @default {250} */
  diffMs?: number;
  /** Users listed in a state before it is truncated and diffs carry only the count. @default {1000} */
  maxMembers?: number;
  /** @default systemClock */
  clock?: Clock;
  /** Called when the store or the bus fails in the background (logged by the caller). */
  onError?: (err: unknown) => void;
}

/** Counts for tests, `/healthz` and the admin page. */
export interface PresenceStats {
  /** Presence rooms with local members. */
  rooms: number;
  /** Users across those rooms (every instance's), summed per room. */
  users: number;
  /** Room timers pending (at most one per room). */
  timers: number;
  /** Other instances with users in those rooms. */
  instances: number;
}

interface LocalUser {
  sessions: Set<PresenceMember>;
  info: PresenceInfo | undefined;
}

interface RoomView {
  readonly room: string;
  /** This instance's users. */
  readonly local: Map<string, LocalUser>;
  /** Other instances' users, as announced or stored. */
  readonly remote: Map<string, Map<string, PresenceEntry>>;
  /** Every user in the room, in the order they joined (the truncated state lists the first). */
  readonly users: Map<string, PresenceEntry>;
  /** Sessions that have their state and receive diffs. */
  readonly listeners: Set<PresenceMember>;
  /** Sessions that get their state at the end of the current window. */
  readonly waiting: Set<PresenceMember>;
  /** Changes of the current window (cancelling pairs removed). */
  readonly joins: Map<string, PresenceInfo | undefined>;
  readonly leaves: Set<string>;
  /** The window's changes outgrew `maxMembers`: everyone gets a fresh state instead. */
  resync: boolean;
  countChanged: boolean;
  timer: TimerId | undefined;
  lastFlush: number;
  /** Whether the room was above `maxMembers` at the last flush. */
  large: boolean;
  lastCount: number;
  /** Shared store: the first read of the room is in flight; states wait for it. */
  loading: boolean;
  /** `instance\nuser` keys announced while a store read was in flight (that read is older). */
  touched: Set<string> | null;
}

type Announcement =
  /** Instance `origin` now has `c` connections of user `u` in the room (0: none). */
  | { t: "u"; u: string; c: number; i?: PresenceInfo }
  /** An instance got its first member in the room: answer with your state. */
  | { t: "ask" }
  /** Part of an answer to `ask`: the origin's users in the room; `r` replaces what was known. */
  | { t: "s"; r: boolean; m: [string, number, PresenceInfo | null][] }
  /** The origin is alive (on {@linkcode PRESENCE_SYSTEM_ROOM}). */
  | { t: "hb" };

/**
 * Tracks presence rooms for one instance. Every timer it owns is cleared by
 * `close`; a room's timer and view go with its last local member.
 *
 * @example
 * ```ts ignore
 * const presence = new PresenceTracker({ bus, store, enabled: () => true });
 * rooms.onSystem(PRESENCE_KIND, (envelope) => presence.receive(envelope));
 * presence.join("lobby", session); // after `joined`
 * presence.leave("lobby", session); // on leave, close, error, timeout, revocation
 * ```
 */
export class PresenceTracker {
  readonly #bus: Bus;
  readonly #store: PresenceStore;
  readonly #enabled: (room: string) => boolean;
  readonly #diffMs: number;
  readonly #maxMembers: number;
  readonly #clock: Clock;
  /** A store call failed (reported, throttled). */
  readonly #onError: (err: unknown) => void;
  readonly #report: (err: unknown) => void;
  readonly #instance: string;
  readonly #rooms = new Map<string, RoomView>();
  readonly #pending = new Set<Promise<unknown>>();
  /** Liveness checks (and heartbeats every `ttlMs / 3`); runs only while rooms exist. */
  #ticker: TimerId | undefined;
  #lastHeartbeat = 0;
  #checking = false;
  #closed = false;
  /** When a store or bus call last failed, and when that was last reported. */
  #storeFailedAt = -Infinity;
  #lastReport = -Infinity;
  /** When every local entry was last written again after a failure. */
  #lastResync = -Infinity;
  readonly #checkMs: number;
  readonly #heartbeatMs: number;

  /** @param options bus, store, which rooms, and timings */
  constructor(options: PresenceTrackerOptions) {
    const { diffMs = 250, maxMembers = 1000, clock = systemClock, onError = () => {} } = options;
    this.#bus = options.bus;
    this.#store = options.store;
    this.#enabled = options.enabled;
    this.#diffMs = diffMs;
    this.#maxMembers = maxMembers;
    this.#clock = clock;
    // A store outage fails every write and tick: report it once per heartbeat interval, not each time.
    this.#report = (err) => {
      const now = this.#clock.now();
      if (now - this.#lastReport < this.#heartbeatMs) return;
      this.#lastReport = now;
      onError(err);
    };
    this.#onError = (err) => {
      this.#storeFailedAt = this.#clock.now();
      this.#report(err);
    };
    this.#instance = options.bus.instanceId;
    this.#heartbeatMs = Math.max(1, Math.floor(this.#store.ttlMs / 3));
    this.#checkMs = Math.min(MAX_CHECK_MS, this.#heartbeatMs);
    // A per-isolate store learns other instances' liveness from their heartbeats.
    if (!this.#store.shared) this.#track(this.#bus.subscribe(PRESENCE_SYSTEM_ROOM));
  }

  /** Whether `room` tracks presence. */
  enabled(room: string): boolean {
    return this.#enabled(room);
  }

  /** Current counts. */
  stats(): PresenceStats {
    let users = 0, timers = 0;
    const instances = new Set<string>();
    for (const view of this.#rooms.values()) {
      users += view.users.size;
      if (view.timer !== undefined) timers++;
      for (const instance of view.remote.keys()) instances.add(instance);
    }
    return { rooms: this.#rooms.size, users, timers, instances: instances.size };
  }

  /** The users of a room with local members (for tests and the admin page). */
  count(room: string): number {
    return this.#rooms.get(room)?.users.size ?? 0;
  }

  /**
   * A session joined `room` (call after `joined` was sent). In a presence
   * room it counts towards its user and gets a `presence_state`: at once when
   * nothing is pending, else at the end of the current window, so that the
   * diffs it receives afterwards start exactly where its state ends.
   */
  join(room: string, member: PresenceMember): void {
    if (this.#closed || !this.#enabled(room)) return;
    let view = this.#rooms.get(room);
    if (view === undefined) view = this.#open(room);
    const userId = member.userId;
    let user = view.local.get(userId);
    if (user === undefined) view.local.set(userId, user = { sessions: new Set(), info: undefined });
    if (user.sessions.has(member)) return;
    user.sessions.add(member);
    // The latest joining connection's token speaks for the user (a refreshed `info`).
    user.info = member.presenceInfo;
    this.#announce(view, userId);
    this.#recount(view, userId);
    view.waiting.add(member);
    if (view.timer === undefined && !view.loading) this.#sendStates(view);
  }

  /** A session left `room` on any path; its user leaves with its last connection. */
  leave(room: string, member: PresenceMember): void {
    const view = this.#rooms.get(room);
    if (view === undefined) return;
    const userId = member.userId;
    const user = view.local.get(userId);
    if (user === undefined || !user.sessions.delete(member)) return;
    view.listeners.delete(member);
    view.waiting.delete(member);
    if (user.sessions.size === 0) view.local.delete(userId);
    this.#announce(view, userId);
    this.#recount(view, userId);
    if (view.local.size === 0) this.#dropView(view);
  }

  /**
   * Answers a `presence` request with the room's current state. Returns false
   * when the room does not track presence (the caller answers `bad_request`).
   */
  request(room: string, member: PresenceMember, id: string | undefined): boolean {
    if (!this.#enabled(room)) return false;
    const view = this.#rooms.get(room);
    if (view === undefined) return false;
    member.send(this.#encodeState(view, id));
    return true;
  }

  /** Handles a presence system envelope from another instance (wired to `rooms.onSystem`). */
  receive(envelope: Envelope): void {
    if (this.#closed || envelope.origin === this.#instance) return;
    let message: Announcement;
    try {
      message = JSON.parse(envelope.frame) as Announcement;
    } catch {
      return;
    }
    const origin = envelope.origin;
    if (!this.#store.shared) this.#track(this.#store.heartbeat(origin, []));
    if (message.t === "hb") return;
    const view = this.#rooms.get(envelope.room);
    if (view === undefined) return;
    switch (message.t) {
      case "ask":
        if (!this.#store.shared) this.#answer(view);
        return;
      case "u":
        return this.#applyRemote(view, origin, message.u, message.c, message.i);
      case "s": {
        const seen = new Set<string>();
        for (const [userId, connections, info] of message.m) {
          seen.add(userId);
          this.#applyRemote(view, origin, userId, connections, info ?? undefined);
        }
        if (message.r) {
          for (const userId of [...view.remote.get(origin)?.keys() ?? []]) {
            if (!seen.has(userId)) this.#applyRemote(view, origin, userId, 0, undefined);
          }
        }
        return;
      }
    }
  }

  /**
   * Stops: clears every timer, removes this instance's entries from the store
   * and waits for writes in flight. Sessions should have left first (server
   * shutdown closes them). Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ticker !== undefined) this.#clock.clearInterval(this.#ticker);
    this.#ticker = undefined;
    const rooms = [...this.#rooms.keys()];
    for (const view of this.#rooms.values()) {
      if (view.timer !== undefined) this.#clock.clearTimeout(view.timer);
      view.timer = undefined;
    }
    this.#rooms.clear();
    this.#track(this.#store.drop(this.#instance, rooms));
    if (!this.#store.shared) this.#track(this.#bus.unsubscribe(PRESENCE_SYSTEM_ROOM));
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  #open(room: string): RoomView {
    const view: RoomView = {
      room,
      local: new Map(),
      remote: new Map(),
      users: new Map(),
      listeners: new Set(),
      waiting: new Set(),
      joins: new Map(),
      leaves: new Set(),
      resync: false,
      countChanged: false,
      timer: undefined,
      lastFlush: -Infinity,
      large: false,
      lastCount: 0,
      loading: this.#store.shared,
      touched: null,
    };
    this.#rooms.set(room, view);
    if (this.#ticker === undefined) {
      this.#ticker = this.#clock.setInterval(() => this.#tick(), this.#checkMs);
    }
    if (this.#store.shared) this.#load(view);
    else this.#publish(room, { t: "ask" });
    return view;
  }

  #dropView(view: RoomView): void {
    if (view.timer !== undefined) this.#clock.clearTimeout(view.timer);
    view.timer = undefined;
    this.#rooms.delete(view.room);
    if (this.#rooms.size === 0 && this.#ticker !== undefined) {
      this.#clock.clearInterval(this.#ticker);
      this.#ticker = undefined;
    }
  }

  /** Writes this instance's entry for a user and tells the others, in that order. */
  #announce(view: RoomView, userId: string): void {
    const user = view.local.get(userId);
    const connections = user?.sessions.size ?? 0;
    const entry: PresenceEntry = { connections };
    if (user?.info !== undefined) entry.info = user.info;
    const write = connections === 0
      ? this.#store.delete(view.room, this.#instance, userId)
      : this.#store.set(view.room, this.#instance, userId, entry);
    const message: Announcement = { t: "u", u: userId, c: connections };
    if (entry.info !== undefined) message.i = entry.info;
    // Published once written, so that a store read that misses the entry is
    // older than the announcement (see `touched`).
    this.#track(write.catch(this.#onError).then(() => this.#publish(view.room, message)));
  }

  #publish(room: string, message: Announcement): void {
    if (this.#closed && message.t !== "u") return;
    const frame = JSON.stringify(message);
    if (!this.#bus.fits(room, frame)) {
      this.#report(new RangeError(`presence announcement for ${room} is over the bus's limit`));
      return;
    }
    this.#bus.publish(room, frame, { kind: PRESENCE_KIND });
  }

  /** Answers an `ask` with this instance's users, in envelopes the bus can carry. */
  #answer(view: RoomView): void {
    let chunk: [string, number, PresenceInfo | null][] = [];
    let bytes = 0;
    let first = true;
    const flush = () => {
      this.#publish(view.room, { t: "s", r: first, m: chunk });
      first = false;
      chunk = [];
      bytes = 0;
    };
    const budget = Math.max(1024, Math.floor(this.#bus.maxEnvelopeBytes / 2));
    for (const [userId, user] of view.local) {
      const item: [string, number, PresenceInfo | null] = [
        userId,
        user.sessions.size,
        user.info ?? null,
      ];
      const size = JSON.stringify(item).length;
      if (bytes + size > budget && chunk.length > 0) flush();
      chunk.push(item);
      bytes += size + 1;
    }
    flush();
  }

  #applyRemote(
    view: RoomView,
    instance: string,
    userId: string,
    connections: number,
    info: PresenceInfo | undefined,
  ): void {
    view.touched?.add(`${instance}\n${userId}`);
    let users = view.remote.get(instance);
    if (connections <= 0) {
      if (users === undefined || !users.delete(userId)) return;
      if (users.size === 0) view.remote.delete(instance);
    } else {
      if (users === undefined) view.remote.set(instance, users = new Map());
      const entry: PresenceEntry = { connections };
      if (info !== undefined) entry.info = info;
      users.set(userId, entry);
    }
    this.#recount(view, userId);
  }

  /** Recomputes one user's total and records a join or leave when it crosses zero. */
  #recount(view: RoomView, userId: string): void {
    const local = view.local.get(userId);
    let connections = local?.sessions.size ?? 0;
    let info = local?.info;
    for (const users of view.remote.values()) {
      const entry = users.get(userId);
      if (entry === undefined) continue;
      connections += entry.connections;
      info ??= entry.info;
    }
    const known = view.users.get(userId);
    if (connections === 0) {
      if (known === undefined) return;
      view.users.delete(userId);
      if (!view.joins.delete(userId)) view.leaves.add(userId);
    } else if (known === undefined) {
      const entry: PresenceEntry = { connections };
      if (info !== undefined) entry.info = info;
      view.users.set(userId, entry);
      if (!view.leaves.delete(userId)) view.joins.set(userId, info);
    } else {
      known.connections = connections;
      if (info === undefined) delete known.info;
      else known.info = info;
      return;
    }
    view.countChanged = true;
    if (view.joins.size + view.leaves.size > this.#maxMembers) {
      // A storm: the details would cost more than a fresh state, so keep none.
      view.joins.clear();
      view.leaves.clear();
      view.resync = true;
    }
    this.#schedule(view);
  }

  #schedule(view: RoomView): void {
    if (view.timer !== undefined || this.#closed) return;
    let delay = this.#diffMs;
    if (view.large || view.users.size > this.#maxMembers) {
      delay = Math.max(delay, view.lastFlush + LARGE_ROOM_DIFF_MS - this.#clock.now());
    }
    view.timer = this.#clock.setTimeout(() => {
      view.timer = undefined;
      this.#flush(view);
    }, delay);
  }

  #flush(view: RoomView): void {
    if (this.#rooms.get(view.room) !== view) return;
    if (view.loading) return; // the load flushes when it is done
    const count = view.users.size;
    const large = count > this.#maxMembers;
    if (large) {
      if (count !== view.lastCount || !view.large) {
        const frame = encode({
          type: "presence_diff",
          room: view.room,
          joins: [],
          leaves: [],
          count,
        });
        for (const member of view.listeners) member.send(frame);
      }
    } else if (view.large || view.resync) {
      // Count-only diffs left the listeners without names: give them the list again.
      const frame = this.#encodeState(view, undefined);
      for (const member of view.listeners) member.send(frame);
    } else if (view.joins.size > 0 || view.leaves.size > 0) {
      const joins = [...view.joins].map(([userId, info]) =>
        info === undefined ? { userId } : { userId, info }
      );
      const leaves = [...view.leaves].map((userId) => ({ userId }));
      const frame = encode({ type: "presence_diff", room: view.room, joins, leaves, count });
      for (const member of view.listeners) {
        // A connection never hears of its own user's join: it is in its state.
        if (!view.joins.has(member.userId)) member.send(frame);
        else {
          const others = joins.filter((j) => j.userId !== member.userId);
          if (others.length > 0 || leaves.length > 0) {
            member.send(
              encode({ type: "presence_diff", room: view.room, joins: others, leaves, count }),
            );
          }
        }
      }
    }
    view.joins.clear();
    view.leaves.clear();
    view.resync = false;
    view.countChanged = false;
    view.lastFlush = this.#clock.now();
    view.large = large;
    view.lastCount = count;
    this.#sendStates(view);
  }

  #sendStates(view: RoomView): void {
    if (view.waiting.size === 0) return;
    const frame = this.#encodeState(view, undefined);
    for (const member of view.waiting) {
      member.send(frame);
      view.listeners.add(member);
    }
    view.waiting.clear();
  }

  #encodeState(view: RoomView, id: string | undefined): string {
    const members: WireMember[] = [];
    for (const [userId, entry] of view.users) {
      if (members.length >= this.#maxMembers) break;
      members.push(
        entry.info === undefined
          ? { userId, connections: entry.connections }
          : { userId, info: entry.info, connections: entry.connections },
      );
    }
    const count = view.users.size;
    return encode({
      type: "presence_state",
      room: view.room,
      ...(id === undefined ? {} : { id }),
      members,
      count,
      ...(count > this.#maxMembers ? { truncated: true } : {}),
    });
  }

  /** Shared store: reads the room's entries of other instances into a fresh view. */
  #load(view: RoomView): void {
    view.touched ??= new Set();
    this.#track(
      this.#store.list(view.room).then(
        (entries) => this.#merge(view, entries),
        (err) => {
          view.touched = null;
          this.#onError(err);
        },
      ).finally(() => {
        if (!view.loading || this.#rooms.get(view.room) !== view) return;
        view.loading = false;
        if (view.timer !== undefined) this.#clock.clearTimeout(view.timer);
        view.timer = undefined;
        this.#flush(view);
      }),
    );
  }

  /**
   * Brings a view in line with a store read: entries the read shows are
   * taken, entries it lacks are dropped, except those announced while the
   * read was in flight (the announcement is newer).
   */
  #merge(view: RoomView, entries: RoomEntries): void {
    const touched = view.touched ?? new Set<string>();
    view.touched = null;
    if (this.#rooms.get(view.room) !== view) return;
    entries.delete(this.#instance);
    // Right after a store outage the others may not have written their entries again yet.
    const removals = !this.#settling();
    for (const [instance, users] of removals ? [...view.remote] : []) {
      const stored = entries.get(instance);
      for (const userId of [...users.keys()]) {
        if (stored?.has(userId) || touched.has(`${instance}\n${userId}`)) continue;
        this.#applyRemote(view, instance, userId, 0, undefined);
      }
    }
    for (const [instance, users] of entries) {
      for (const [userId, entry] of users) {
        if (touched.has(`${instance}\n${userId}`)) continue;
        const known = view.remote.get(instance)?.get(userId);
        if (known?.connections === entry.connections) continue;
        this.#applyRemote(view, instance, userId, entry.connections, entry.info);
      }
    }
  }

  #tick(): void {
    if (this.#closed || this.#checking) return;
    const now = this.#clock.now();
    const beat = now - this.#lastHeartbeat >= this.#heartbeatMs - this.#checkMs / 2;
    if (beat) this.#lastHeartbeat = now;
    this.#checking = true;
    this.#track(this.#check(beat).catch(this.#onError).finally(() => this.#checking = false));
  }

  async #check(beat: boolean): Promise<void> {
    if (beat) {
      const rooms = [...this.#rooms.keys()];
      if (!this.#store.shared) this.#publish(PRESENCE_SYSTEM_ROOM, { t: "hb" });
      const failedBefore = this.#storeFailedAt;
      const missing = await this.#store.heartbeat(this.#instance, rooms);
      // The store lost our entries (a Redis restart: the room's entries are gone), or
      // some of them may have expired or failed to be written during an outage (a
      // room written to since holds only the newer ones): write them all again, and
      // announce them, so that instances which dropped our users take them back.
      const rewrite = failedBefore > this.#lastResync ? rooms : missing;
      this.#lastResync = this.#clock.now();
      for (const room of rewrite) {
        const view = this.#rooms.get(room);
        if (view !== undefined) {
          for (const userId of view.local.keys()) this.#announce(view, userId);
        }
      }
      // A delete that failed during the outage left an entry of a user who is gone.
      if (rewrite === rooms && this.#store.shared) {
        for (const room of rooms) this.#track(this.#dropStale(room));
      }
      if (this.#store.shared) {
        for (const view of this.#rooms.values()) {
          if (view.touched === null && !view.loading) this.#load(view);
        }
      }
    }
    // After a store outage longer than the TTL every liveness entry has expired: give the
    // other instances one heartbeat to write theirs again before taking silence for death.
    if (this.#settling()) return;
    const instances = new Set<string>();
    for (const view of this.#rooms.values()) {
      for (const instance of view.remote.keys()) instances.add(instance);
    }
    if (instances.size === 0) return;
    const alive = await this.#store.alive([...instances]);
    for (const instance of instances) {
      if (alive.has(instance)) continue;
      for (const view of this.#rooms.values()) {
        for (const userId of [...view.remote.get(instance)?.keys() ?? []]) {
          this.#applyRemote(view, instance, userId, 0, undefined);
        }
      }
    }
  }

  /** Deletes this instance's stored entries in `room` of users no longer here. */
  async #dropStale(room: string): Promise<void> {
    const stored = (await this.#store.list(room)).get(this.#instance);
    if (stored === undefined) return;
    for (const userId of stored.keys()) {
      if (this.#rooms.get(room)?.local.has(userId) !== true) {
        await this.#store.delete(room, this.#instance, userId);
      }
    }
  }

  /**
   * True within one heartbeat (and check) of a store failure: entries that
   * expired during the outage are being written again, so their absence
   * means nothing yet.
   */
  #settling(): boolean {
    return this.#clock.now() - this.#storeFailedAt < this.#heartbeatMs + this.#checkMs;
  }

  #track<T>(promise: Promise<T>): void {
    const p = promise.catch(this.#onError);
    this.#pending.add(p);
    p.finally(() => this.#pending.delete(p));
  }
}
