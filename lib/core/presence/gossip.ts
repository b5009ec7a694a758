/**
 * Presence without a shared store: nodes tell each other. A node that gets
 * its first member in a room asks the others there for their users (`ask`,
 * answered by `s` chunks the bus can carry); liveness comes from heartbeats
 * on {@linkcode PRESENCE_SYSTEM_ROOM}, and a node not heard from for the TTL
 * is dropped with its users.
 *
 * @module
 */
import { NodeLiveness } from "../liveness.ts";
import type { Clock } from "../../clock.ts";
import {
  type Announcement,
  HEARTBEAT_FRAME,
  PRESENCE_KIND,
  PRESENCE_SYSTEM_ROOM,
  type StateItem,
} from "./announcements.ts";
import type { PresenceHost, PresenceStrategy } from "./strategy.ts";
import type { RoomView } from "./view.ts";

/**
 * The gossip strategy (per-isolate store).
 *
 * @example
 * ```ts ignore
 * const strategy = new GossipStrategy(host, clock);
 * ```
 */
export class GossipStrategy implements PresenceStrategy {
  readonly #host: PresenceHost;
  readonly #liveness: NodeLiveness;

  /** @param host the tracker @param clock for liveness deadlines */
  constructor(host: PresenceHost, clock: Clock) {
    this.#host = host;
    this.#liveness = new NodeLiveness({
      bus: host.bus,
      room: PRESENCE_SYSTEM_ROOM,
      kind: PRESENCE_KIND,
      frame: HEARTBEAT_FRAME,
      ttlMs: host.ttlMs,
      clock,
    });
  }

  start(): void {
    this.#host.track(this.#liveness.start());
  }

  opened(view: RoomView): void {
    this.#host.publish(view.room, { t: "ask" });
  }

  heard(origin: string, message: Announcement, view: RoomView | undefined): void {
    this.#liveness.seen(origin);
    if (view === undefined) return;
    if (message.t === "ask") this.#answer(view);
    else if (message.t === "s") this.#applyState(view, origin, message.r, message.m);
  }

  beat(): void {
    this.#liveness.beat();
  }

  alive(nodes: readonly string[]): Promise<Set<string>> {
    return Promise.resolve(this.#liveness.alive(nodes));
  }

  close(): Promise<void> {
    return this.#liveness.close();
  }

  /** Answers an `ask` with this node's users, in envelopes the bus can carry. */
  #answer(view: RoomView): void {
    let chunk: StateItem[] = [];
    let bytes = 0;
    let first = true;
    const flush = () => {
      this.#host.publish(view.room, { t: "s", r: first, m: chunk });
      first = false;
      chunk = [];
      bytes = 0;
    };
    const budget = Math.max(1024, Math.floor(this.#host.bus.maxEnvelopeBytes / 2));
    for (const [userId, user] of view.local) {
      const item: StateItem = [userId, user.sessions.size, user.info ?? null];
      const size = JSON.stringify(item).length;
      if (bytes + size > budget && chunk.length > 0) flush();
      chunk.push(item);
      bytes += size + 1;
    }
    flush();
  }

  /** Applies one chunk of an answer; the first (`replace`) drops users it does not list. */
  #applyState(view: RoomView, origin: string, replace: boolean, items: readonly StateItem[]): void {
    const seen = new Set<string>();
    for (const [userId, connections, info] of items) {
      seen.add(userId);
      view.applyRemote(origin, userId, connections, info ?? undefined);
    }
    if (!replace) return;
    for (const userId of [...view.remote.get(origin)?.keys() ?? []]) {
      if (!seen.has(userId)) view.applyRemote(origin, userId, 0, undefined);
    }
  }
}
