/**
 * The cluster-wide native events: `room_occupied`/`room_vacated` (the first
 * member anywhere joined / the last anywhere left), `user_online`/
 * `user_offline` (a user's first / last connection anywhere), and
 * `presence_joined`/`presence_left` (a user's first / last connection to a
 * presence room anywhere). This node tells the {@linkcode OccupancyStore}
 * what it holds as its own first and last come and go; the store answers
 * whether that was the first or last anywhere, once for the cluster.
 *
 * A node that dies without saying goodbye keeps its holds until another node
 * finds it dead: every node beats on the bus (`NodeLiveness`, the machinery
 * presence uses) every `ttlMs / 3`, and a node not heard from for `ttlMs`
 * is reaped by whichever live node gets there first; the events its holds
 * owed follow then. With the memory store "anywhere" is this isolate.
 *
 * @module
 */
import type { Envelope, SystemChannel } from "../bus/types.ts";
import type { Clock, TimerId } from "../clock.ts";
import { systemClock } from "../clock.ts";
import type { PresenceInfo } from "../core/auth.ts";
import { NodeLiveness } from "../core/liveness.ts";
import type { MembershipChange } from "../core/rooms.ts";
import { errorMessage } from "../errors.ts";
import type { OccupancyStore } from "../store/occupancy/types.ts";
import type { WebhookEngine } from "./engine.ts";

/** The bus room of this module's heartbeats (no client can join a `$` room). */
export const OCCUPANCY_SYSTEM_ROOM = "$webhooks";
/** The system envelope kind of those heartbeats. */
export const OCCUPANCY_KIND = "webhooks";

/** What a hold is of: a room, a user, or a user in a presence room. */
type Held = ["r", string] | ["u", string] | ["p", string, string];

const NAMES = {
  r: ["room_occupied", "room_vacated"],
  u: ["user_online", "user_offline"],
  p: ["presence_joined", "presence_left"],
} as const;

/** A first or last anywhere, of a room or of a user in a presence room. */
export type OccupancyEdge =
  | { readonly kind: "room"; readonly room: string; readonly first: boolean }
  | {
    readonly kind: "member";
    readonly room: string;
    readonly userId: string;
    readonly first: boolean;
    readonly info?: PresenceInfo;
  };

/**
 * Another protocol's share of the occupancy events (Pusher's
 * `channel_occupied`, `member_added`, …): the rooms it owns, which of them it
 * wants followed, and the event of each edge. Its rooms are decided by the
 * same store, heartbeats and reaping as the native ones.
 */
export interface OccupancyProtocol {
  /** Whether `room` is this protocol's (then the native events skip it). */
  owns(room: string): boolean;
  /** Whether the first and last member of `room` anywhere are wanted. */
  tracksRoom(room: string): boolean;
  /** Whether each user's first and last connection to `room` anywhere are wanted. */
  tracksMembers(room: string): boolean;
  /** The event of an edge (undefined: none). */
  event(edge: OccupancyEdge): ({ name: string } & Record<string, unknown>) | undefined;
}

/** Options for {@linkcode OccupancyWebhooks}. */
export interface OccupancyWebhooksOptions {
  /** Where holds are decided. */
  store: OccupancyStore;
  /** Where the events go. */
  engine: WebhookEngine;
  /** Carries heartbeats; its `instanceId` names this node. */
  bus: SystemChannel;
  /** Whether `room` tracks presence (`PRESENCE` and the policy's `presence` rules). */
  presenceFor(room: string): boolean;
  /** Rooms and user ids another protocol owns, skipped. @default none */
  foreign?: (name: string) => boolean;
  /** Protocols whose rooms' events are theirs (checked before `foreign`). @default none */
  protocols?: readonly OccupancyProtocol[];
  /** A node not heard from for this long is dead (`PRESENCE_TTL_MS`). */
  ttlMs: number;
  /** @default systemClock */
  clock?: Clock;
  /** Told of store failures (an event may be lost then). */
  onError?: (error: Error) => void;
}

/**
 * Occupancy events for this node.
 *
 * @example
 * ```ts ignore
 * const occupancy = new OccupancyWebhooks({ store, engine, bus, presenceFor, ttlMs: 30_000 });
 * await occupancy.start();
 * rooms.onSystem(OCCUPANCY_KIND, (envelope) => occupancy.heard(envelope));
 * // rooms' onMembership → occupancy.membership(change); connections' onUser → occupancy.user(id, online)
 * await occupancy.close();
 * ```
 */
export class OccupancyWebhooks {
  readonly #store: OccupancyStore;
  readonly #engine: WebhookEngine;
  readonly #node: string;
  readonly #presenceFor: (room: string) => boolean;
  readonly #foreign: (name: string) => boolean;
  readonly #protocols: readonly OccupancyProtocol[];
  readonly #clock: Clock;
  readonly #onError: (error: Error) => void;
  readonly #liveness: NodeLiveness | undefined;
  readonly #ttlMs: number;
  readonly #startedAt: number;
  /** This node's connections per presence room and user (`room\0user`). */
  readonly #presence = new Map<string, { count: number; info: PresenceInfo | undefined }>();
  /** The last store call per key, so that this node's hold and release of a key stay in order. */
  readonly #chains = new Map<string, Promise<void>>();
  readonly #wanted: Record<Held[0], boolean>;
  #ticker: TimerId | undefined;
  #reaping = false;
  #closed = false;

  /** @param options store, engine, bus, presence rule, TTL and clock */
  constructor(options: OccupancyWebhooksOptions) {
    const { clock = systemClock, onError = () => {} } = options;
    this.#store = options.store;
    this.#engine = options.engine;
    this.#node = options.bus.instanceId;
    this.#presenceFor = options.presenceFor;
    this.#foreign = options.foreign ?? (() => false);
    this.#protocols = options.protocols ?? [];
    this.#clock = clock;
    this.#onError = onError;
    this.#ttlMs = options.ttlMs;
    this.#startedAt = clock.now();
    this.#wanted = wantedKinds(options.engine);
    this.#liveness = options.store.shared
      ? new NodeLiveness({
        bus: options.bus,
        room: OCCUPANCY_SYSTEM_ROOM,
        kind: OCCUPANCY_KIND,
        frame: "{}",
        ttlMs: options.ttlMs,
        clock,
      })
      : undefined;
  }

  /**
   * Whether the engine wants any native occupancy event (none, and no other
   * protocol wants one: nothing needs to be built).
   */
  static wanted(engine: WebhookEngine): boolean {
    const kinds = wantedKinds(engine);
    return kinds.r || kinds.u || kinds.p;
  }

  /** Starts beating and checking other nodes (shared stores only). */
  async start(): Promise<void> {
    if (this.#liveness === undefined) return;
    await this.#liveness.start();
    this.#liveness.beat();
    this.#ticker = this.#clock.setInterval(() => this.#tick(), Math.max(1, this.#ttlMs / 3));
  }

  /** A heartbeat (or other envelope of this kind) from another node. */
  heard(envelope: Envelope): void {
    this.#liveness?.seen(envelope.origin);
  }

  /** A member joined or left a room here (wired to the rooms' `onMembership`). */
  membership(change: MembershipChange): void {
    if (this.#closed) return;
    const { room, member, joined, members } = change;
    const protocol = this.#protocols.find((p) => p.owns(room));
    if (protocol === undefined && this.#foreign(room)) return;
    const tracksRoom = protocol === undefined ? this.#wanted.r : protocol.tracksRoom(room);
    if (tracksRoom && members === (joined ? 1 : 0)) this.#change(["r", room], joined);
    const tracksMembers = protocol === undefined
      ? this.#wanted.p && this.#presenceFor(room)
      : protocol.tracksMembers(room);
    const shown = shownIn(member, room);
    const userId = shown.userId;
    if (!tracksMembers || userId === undefined) return;
    const key = `${room}\0${userId}`;
    const local = this.#presence.get(key);
    if (joined) {
      const entry = local ?? { count: 0, info: undefined };
      entry.count++;
      entry.info = shown.presenceInfo ?? entry.info;
      this.#presence.set(key, entry);
      if (entry.count === 1) this.#change(["p", room, userId], true, entry.info);
    } else if (local !== undefined && --local.count === 0) {
      this.#presence.delete(key);
      this.#change(["p", room, userId], false);
    }
  }

  /** A user's first connection here opened, or their last one ended (wired to `Connections`). */
  user(userId: string, online: boolean): void {
    if (this.#closed || !this.#wanted.u || this.#foreign(userId)) return;
    this.#change(["u", userId], online);
  }

  /**
   * Waits for the store calls under way (sessions closed first, so their
   * releases are among them), releases whatever this node still holds, and
   * stops beating. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ticker !== undefined) this.#clock.clearInterval(this.#ticker);
    while (this.#chains.size > 0) await Promise.allSettled([...this.#chains.values()]);
    this.#presence.clear();
    try {
      await this.#reap(this.#node);
    } catch (err) {
      this.#fail(err);
    }
    await this.#liveness?.close();
  }

  /** Tells the store, in order per key, and emits what it answers. */
  #change(held: Held, hold: boolean, info?: PresenceInfo): void {
    const key = JSON.stringify(held);
    const previous = this.#chains.get(key) ?? Promise.resolve();
    const next = previous.then(async () => {
      const edge = hold
        ? await this.#store.hold(key, this.#node)
        : await this.#store.release(key, this.#node);
      if (edge) this.#emit(held, hold, info);
    }).catch((err) => this.#fail(err));
    this.#chains.set(key, next);
    void next.finally(() => {
      if (this.#chains.get(key) === next) this.#chains.delete(key);
    });
  }

  #emit(held: Held, first: boolean, info?: PresenceInfo): void {
    const protocol = held[0] === "u" ? undefined : this.#protocols.find((p) => p.owns(held[1]));
    if (protocol !== undefined) {
      const edge: OccupancyEdge = held[0] === "r"
        ? { kind: "room", room: held[1], first }
        : { kind: "member", room: held[1], userId: held[2]!, first, ...(info ? { info } : {}) };
      const event = protocol.event(edge);
      if (event !== undefined) this.#engine.emit(event);
      return;
    }
    const name = NAMES[held[0]][first ? 0 : 1];
    if (held[0] === "r") this.#engine.emit({ name, room: held[1] });
    else if (held[0] === "u") this.#engine.emit({ name, userId: held[1] });
    else {
      this.#engine.emit({
        name,
        room: held[1],
        userId: held[2],
        ...(info === undefined ? {} : { info }),
      });
    }
  }

  #tick(): void {
    if (this.#closed) return;
    this.#liveness?.beat();
    // Until a whole TTL has passed, silence may only mean we have not listened long enough.
    if (this.#reaping || this.#clock.now() - this.#startedAt < this.#ttlMs) return;
    this.#reaping = true;
    this.#reapDead().catch((err) => this.#fail(err)).finally(() => this.#reaping = false);
  }

  async #reapDead(): Promise<void> {
    const others = (await this.#store.nodes()).filter((node) => node !== this.#node);
    if (others.length === 0 || this.#liveness === undefined) return;
    const alive = this.#liveness.alive(others);
    for (const node of others) if (!alive.has(node) && !this.#closed) await this.#reap(node);
  }

  /** Releases everything `node` holds and emits what became empty. */
  async #reap(node: string): Promise<void> {
    for (;;) {
      const { emptied, done } = await this.#store.reap(node);
      for (const key of emptied) {
        const held = parseHeld(key);
        if (held !== undefined) this.#emit(held, false);
      }
      if (done) return;
    }
  }

  #fail(err: unknown): void {
    this.#onError(err instanceof Error ? err : new Error(errorMessage(err)));
  }
}

/** Which kinds of hold have an event the engine wants. */
function wantedKinds(engine: WebhookEngine): Record<Held[0], boolean> {
  const wants = (kind: Held[0]) => NAMES[kind].some((name) => engine.wants(name));
  return { r: wants("r"), u: wants("u"), p: wants("p") };
}

/**
 * Who presence shows for `member` in `room`: a session's identity there (an
 * adapter may name another per room, as Pusher's `channel_data` does), else
 * the member itself with its token's `info`.
 */
function shownIn(
  member: MembershipChange["member"],
  room: string,
): { userId?: string | undefined; presenceInfo?: PresenceInfo | undefined } {
  const session = member as {
    shownIn?(room: string): { userId: string; presenceInfo?: PresenceInfo | undefined };
    presenceInfo?: PresenceInfo;
  };
  return session.shownIn?.(room) ?? { userId: member.userId, presenceInfo: session.presenceInfo };
}

/** A key written by {@linkcode OccupancyWebhooks}; undefined for anything else. */
function parseHeld(key: string): Held | undefined {
  try {
    const value: unknown = JSON.parse(key);
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) return undefined;
    const [kind, a, b] = value as string[];
    if ((kind === "r" || kind === "u") && a !== undefined && value.length === 2) return [kind, a];
    if (kind === "p" && a !== undefined && b !== undefined && value.length === 3) {
      return ["p", a, b];
    }
    return undefined;
  } catch {
    return undefined;
  }
}
