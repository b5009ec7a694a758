/**
 * How a tracker learns the other nodes' users of a room: one interface, two
 * strategies, one given to the tracker at construction (the server picks it
 * from the presence store's backend).
 *
 * - {@linkcode GossipStrategy} (`gossip.ts`): no shared store. A node that
 *   opens a room asks the others for their users; nodes heartbeat on the bus
 *   and one not heard from for the TTL is dropped.
 * - {@linkcode StoreBackedStrategy} (`store_backed.ts`): a shared store
 *   (Redis, KV) holds every node's entries. A room is loaded from it when it
 *   opens and reconciled with it at every heartbeat; a node whose liveness
 *   lapsed in the store is dropped.
 *
 * Both see each node's `u` announcements (written to the store first, then
 * published) through the tracker, which applies them to the view.
 *
 * @module
 */
import type { SystemChannel } from "../../bus/types.ts";
import type { PresenceStore } from "../../store/presence/types.ts";
import type { Announcement } from "./announcements.ts";
import type { RoomView } from "./view.ts";

/** The strategies by name: `gossip` ({@linkcode GossipStrategy}), `store` ({@linkcode StoreBackedStrategy}). */
export type PresenceStrategyKind = "gossip" | "store";

/** What a strategy may use of its tracker. */
export interface PresenceHost {
  /** This node's id. */
  readonly node: string;
  readonly bus: SystemChannel;
  readonly store: PresenceStore;
  /** How long a node or entry lives without a refresh. */
  readonly ttlMs: number;
  /** The open view of `room`, if any. */
  view(room: string): RoomView | undefined;
  /** Every open view. */
  views(): Iterable<RoomView>;
  /** Publishes an announcement on `room`'s bus channel (nothing after close, but `u`). */
  publish(room: string, message: Announcement): void;
  /** Keeps a background promise until close; a rejection is a store failure. */
  track(promise: Promise<unknown>): void;
  /** A store call failed: reported (throttled), and the tracker settles. */
  fail(err: unknown): void;
}

/** One way of learning other nodes' users; see the module doc. */
export interface PresenceStrategy {
  /** Starts background listening (called once, by the tracker's constructor). */
  start(): void;
  /** `view` was just opened for its room's first local member. */
  opened(view: RoomView): void;
  /**
   * Another node's announcement (heartbeats included), before the tracker
   * applies a `u`; `view` is the room's, if open here.
   */
  heard(origin: string, message: Announcement, view: RoomView | undefined): void;
  /**
   * Once per heartbeat, after this node's entries were refreshed (and written
   * again where the store lost them; `rewroteAll` when all were).
   */
  beat(rooms: readonly string[], rewroteAll: boolean): void;
  /** Which of `nodes` are alive. */
  alive(nodes: readonly string[]): Promise<Set<string>>;
  /** Stops background listening. */
  close(): Promise<void>;
}
