/**
 * Presence: who is in each presence room, per user, across every node. The
 * {@linkcode PresenceTracker} is owned by the server and fed by sessions
 * (join, leave, end); it keeps one {@linkcode RoomView} per room with local
 * members, which batches changes into neutral events (`events.ts`) that each
 * protocol's codec encodes.
 *
 * Across nodes, each node writes its own users' connection counts to the
 * {@linkcode PresenceStore} as entries per (room, node), then announces them
 * on the room's bus channel (`announcements.ts`). How it learns of the
 * others is the strategy it is given (`strategy.ts`): gossip over the bus
 * for a per-isolate store, reads and reconciliation for a shared one (the
 * server chooses, from the store's backend). Either way a node found dead is dropped
 * (its users leave).
 *
 * @module
 */
import type { Envelope, SystemChannel } from "../../bus/types.ts";
import type { Clock, TimerId } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import type { PresenceStore } from "../../store/presence/types.ts";
import { throttle } from "./_throttle.ts";
import { type Announcement, parseAnnouncement, publishAnnouncement } from "./announcements.ts";
import type { PresenceMember } from "./events.ts";
import { GossipStrategy } from "./gossip.ts";
import { StoreBackedStrategy } from "./store_backed.ts";
import type { PresenceHost, PresenceStrategy, PresenceStrategyKind } from "./strategy.ts";
import { RoomView, type ViewSettings } from "./view.ts";

export { PRESENCE_KIND, PRESENCE_SYSTEM_ROOM } from "./announcements.ts";
export type * from "./events.ts";
export { LARGE_ROOM_DIFF_MS } from "./view.ts";

/** Longest wait between liveness checks of other nodes. */
const MAX_CHECK_MS = 1000;

/** Options for {@linkcode PresenceTracker}. */
export interface PresenceTrackerOptions {
  /** Carries announcements to other nodes; `instanceId` names this one. */
  bus: SystemChannel;
  /** Where this node's entries are written (and, with `strategy: "store"`, the others' read). */
  store: PresenceStore;
  /**
   * How other nodes' users are learnt: `gossip` over the bus (a per-isolate
   * store), or `store`, read from and reconciled with a shared store.
   *
   * @default {"gossip"}
   */
  strategy?: PresenceStrategyKind;
  /** Whether a room tracks presence (`PRESENCE` and the policy's `presence` rules). */
  enabled(room: string): boolean;
  /** Trailing-edge batching window. @default {250} */
  diffMs?: number;
  /** Users listed in a snapshot before it is truncated and deltas carry only the count. @default {1000} */
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
  /** Users across those rooms (every node's), summed per room. */
  users: number;
  /** Room timers pending (at most one per room). */
  timers: number;
  /** Other nodes with users in those rooms. */
  instances: number;
}

/**
 * Tracks presence rooms for one node. Every timer it owns is cleared by
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
  readonly #bus: SystemChannel;
  readonly #store: PresenceStore;
  readonly #enabled: (room: string) => boolean;
  readonly #settings: ViewSettings;
  readonly #clock: Clock;
  readonly #strategy: PresenceStrategy;
  /** Reports a background fault, at most once per heartbeat interval. */
  readonly #report: (err: unknown) => void;
  readonly #node: string;
  readonly #rooms = new Map<string, RoomView>();
  readonly #pending = new Set<Promise<unknown>>();
  /** Liveness checks (and heartbeats every `ttlMs / 3`); runs only while rooms exist. */
  #ticker: TimerId | undefined;
  #lastHeartbeat = 0;
  #checking = false;
  #closed = false;
  /** When a store call last failed. */
  #storeFailedAt = -Infinity;
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
    this.#clock = clock;
    this.#settings = { diffMs, maxMembers, clock };
    this.#node = options.bus.instanceId;
    this.#heartbeatMs = Math.max(1, Math.floor(this.#store.ttlMs / 3));
    this.#checkMs = Math.min(MAX_CHECK_MS, this.#heartbeatMs);
    this.#report = throttle(onError, this.#heartbeatMs, clock);
    const host = this.#host();
    this.#strategy = options.strategy === "store"
      ? new StoreBackedStrategy(host, () => this.#settling())
      : new GossipStrategy(host, clock);
    this.#strategy.start();
  }

  /** Current counts. */
  stats(): PresenceStats {
    let users = 0, timers = 0;
    const instances = new Set<string>();
    for (const view of this.#rooms.values()) {
      users += view.users.size;
      if (view.pending) timers++;
      for (const node of view.remote.keys()) instances.add(node);
    }
    return { rooms: this.#rooms.size, users, timers, instances: instances.size };
  }

  /** The users of a room with local members (for tests and the admin page). */
  count(room: string): number {
    return this.#rooms.get(room)?.users.size ?? 0;
  }

  /**
   * A session joined `room` (call after `joined` was sent). In a presence
   * room it counts towards its user and gets a snapshot: at once when nothing
   * is pending, else at the end of the current window, so that the deltas it
   * receives afterwards start exactly where its snapshot ends.
   */
  join(room: string, member: PresenceMember): void {
    if (this.#closed || !this.#enabled(room)) return;
    const view = this.#rooms.get(room) ?? this.#open(room);
    if (view.add(member)) this.#announce(view, member.userId);
  }

  /** A session left `room` on any path; its user leaves with its last connection. */
  leave(room: string, member: PresenceMember): void {
    const view = this.#rooms.get(room);
    if (view === undefined || !view.remove(member)) return;
    this.#announce(view, member.userId);
    if (view.local.size === 0) this.#drop(view);
  }

  /**
   * Answers a `presence` request with the room's current snapshot. Returns
   * false when the room does not track presence (the caller answers
   * `bad_request`).
   */
  request(room: string, member: PresenceMember, id: string | undefined): boolean {
    if (!this.#enabled(room)) return false;
    const view = this.#rooms.get(room);
    if (view === undefined) return false;
    member.presence(view.snapshot(id));
    return true;
  }

  /** Handles a presence system envelope from another node (wired to `rooms.onSystem`). */
  receive(envelope: Envelope): void {
    if (this.#closed || envelope.origin === this.#node) return;
    const message = parseAnnouncement(envelope.frame);
    if (message === undefined) return;
    const view = this.#rooms.get(envelope.room);
    this.#strategy.heard(envelope.origin, message, view);
    if (message.t === "u") view?.applyRemote(envelope.origin, message.u, message.c, message.i);
  }

  /**
   * Stops: clears every timer, removes this node's entries from the store and
   * waits for writes in flight. Sessions should have left first (server
   * shutdown closes them). Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ticker !== undefined) this.#clock.clearInterval(this.#ticker);
    this.#ticker = undefined;
    const rooms = [...this.#rooms.keys()];
    for (const view of this.#rooms.values()) view.close();
    this.#rooms.clear();
    this.#track(this.#store.drop(this.#node, rooms));
    this.#track(this.#strategy.close());
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** What the strategy may use of this tracker. */
  #host(): PresenceHost {
    return {
      node: this.#node,
      bus: this.#bus,
      store: this.#store,
      ttlMs: this.#store.ttlMs,
      view: (room) => this.#rooms.get(room),
      views: () => this.#rooms.values(),
      publish: (room, message) => this.#publish(room, message),
      track: (promise) => this.#track(promise),
      fail: (err) => this.#fail(err),
    };
  }

  #open(room: string): RoomView {
    const view = new RoomView(room, this.#settings);
    this.#rooms.set(room, view);
    if (this.#ticker === undefined) {
      this.#ticker = this.#clock.setInterval(() => this.#tick(), this.#checkMs);
    }
    this.#strategy.opened(view);
    return view;
  }

  #drop(view: RoomView): void {
    view.close();
    this.#rooms.delete(view.room);
    if (this.#rooms.size === 0 && this.#ticker !== undefined) {
      this.#clock.clearInterval(this.#ticker);
      this.#ticker = undefined;
    }
  }

  /** Writes this node's entry for a user and tells the others, in that order. */
  #announce(view: RoomView, userId: string): void {
    const entry = view.localEntry(userId);
    const write = entry.connections === 0
      ? this.#store.delete(view.room, this.#node, userId)
      : this.#store.set(view.room, this.#node, userId, entry);
    const message: Announcement = { t: "u", u: userId, c: entry.connections };
    if (entry.info !== undefined) message.i = entry.info;
    // Published once written, so that a store read that misses the entry is
    // older than the announcement (see `RoomView.touched`).
    const fail = (err: unknown) => this.#fail(err);
    this.#track(write.catch(fail).then(() => this.#publish(view.room, message)));
  }

  #publish(room: string, message: Announcement): void {
    if (this.#closed && message.t !== "u") return;
    publishAnnouncement(this.#bus, room, message, this.#report);
  }

  #tick(): void {
    if (this.#closed || this.#checking) return;
    const now = this.#clock.now();
    const beat = now - this.#lastHeartbeat >= this.#heartbeatMs - this.#checkMs / 2;
    if (beat) this.#lastHeartbeat = now;
    this.#checking = true;
    const fail = (err: unknown) => this.#fail(err);
    this.#track(this.#check(beat).catch(fail).finally(() => this.#checking = false));
  }

  async #check(beat: boolean): Promise<void> {
    if (beat) await this.#heartbeat();
    // After a store outage longer than the TTL every liveness entry has expired: give the
    // other nodes one heartbeat to write theirs again before taking silence for death.
    if (this.#settling()) return;
    const nodes = new Set<string>();
    for (const view of this.#rooms.values()) {
      for (const node of view.remote.keys()) nodes.add(node);
    }
    if (nodes.size === 0) return;
    const alive = await this.#strategy.alive([...nodes]);
    for (const node of nodes) {
      if (alive.has(node)) continue;
      for (const view of this.#rooms.values()) view.forget(node);
    }
  }

  /** Refreshes this node's entries, writes again those the store lost, then the strategy's beat. */
  async #heartbeat(): Promise<void> {
    const rooms = [...this.#rooms.keys()];
    const failedBefore = this.#storeFailedAt;
    const missing = await this.#store.heartbeat(this.#node, rooms);
    if (this.#closed) return;
    // The store lost our entries (a Redis restart: the room's entries are gone), or
    // some of them may have expired or failed to be written during an outage (a
    // room written to since holds only the newer ones): write them all again, and
    // announce them, so that nodes which dropped our users take them back.
    const rewrite = failedBefore > this.#lastResync ? rooms : missing;
    this.#lastResync = this.#clock.now();
    for (const room of rewrite) {
      const view = this.#rooms.get(room);
      if (view === undefined) continue;
      for (const userId of view.local.keys()) this.#announce(view, userId);
    }
    this.#strategy.beat(rooms, rewrite === rooms);
  }

  /** A store call failed: reported (throttled), and the next liveness checks wait. */
  #fail(err: unknown): void {
    this.#storeFailedAt = this.#clock.now();
    this.#report(err);
  }

  /**
   * True within one heartbeat (and check) of a store failure: entries that
   * expired during the outage are being written again, so their absence
   * means nothing yet.
   */
  #settling(): boolean {
    return this.#clock.now() - this.#storeFailedAt < this.#heartbeatMs + this.#checkMs;
  }

  #track(promise: Promise<unknown>): void {
    const p = promise.catch((err) => this.#fail(err));
    this.#pending.add(p);
    p.finally(() => this.#pending.delete(p));
  }
}
