/**
 * Presence on a shared store (Redis, KV): every node's entries are in the
 * store. A room is loaded from it when it opens (its first snapshot waits
 * for that read) and reconciled with it at every heartbeat; liveness is the
 * store's, refreshed by the tracker's heartbeat.
 *
 * A read races the bus: an announcement that arrives while a read is in
 * flight is newer than the read, so the read does not undo it (`touched`).
 *
 * @module
 */
import type { RoomEntries } from "../../store/presence/types.ts";
import type { PresenceHost, PresenceStrategy } from "./strategy.ts";
import type { RoomView } from "./view.ts";

/**
 * The store-backed strategy.
 *
 * @example
 * ```ts ignore
 * const strategy = new StoreBackedStrategy(host, () => clock.now() - storeFailedAt < ttlMs);
 * ```
 */
export class StoreBackedStrategy implements PresenceStrategy {
  readonly #host: PresenceHost;
  readonly #settling: () => boolean;

  /**
   * @param host the tracker
   * @param settling true right after a store outage, when others may not have written their entries again yet
   */
  constructor(host: PresenceHost, settling: () => boolean) {
    this.#host = host;
    this.#settling = settling;
  }

  start(): void {}

  opened(view: RoomView): void {
    view.loading = true;
    this.#load(view);
  }

  heard(): void {}

  beat(rooms: readonly string[], rewroteAll: boolean): void {
    // A delete that failed during an outage left an entry of a user who is gone.
    if (rewroteAll) { for (const room of rooms) this.#host.track(this.#dropStale(room)); }
    for (const view of this.#host.views()) {
      if (view.touched === null && !view.loading) this.#load(view);
    }
  }

  alive(nodes: readonly string[]): Promise<Set<string>> {
    return this.#host.store.alive(nodes);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Reads the room's entries of other nodes into the view. */
  #load(view: RoomView): void {
    view.touched ??= new Set();
    this.#host.track(
      this.#host.store.list(view.room).then(
        (entries) => this.#merge(view, entries),
        (err) => {
          view.touched = null;
          this.#host.fail(err);
        },
      ).finally(() => view.loaded()),
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
    if (view.closed) return;
    entries.delete(this.#host.node);
    // Right after a store outage the others may not have written their entries again yet.
    const removals = !this.#settling();
    for (const [node, users] of removals ? [...view.remote] : []) {
      const stored = entries.get(node);
      for (const userId of [...users.keys()]) {
        if (stored?.has(userId) || touched.has(`${node}\n${userId}`)) continue;
        view.applyRemote(node, userId, 0, undefined);
      }
    }
    for (const [node, users] of entries) {
      for (const [userId, entry] of users) {
        if (touched.has(`${node}\n${userId}`)) continue;
        const known = view.remote.get(node)?.get(userId);
        if (known?.connections === entry.connections) continue;
        view.applyRemote(node, userId, entry.connections, entry.info);
      }
    }
  }

  /** Deletes this node's stored entries in `room` of users no longer here. */
  async #dropStale(room: string): Promise<void> {
    const { store, node } = this.#host;
    const stored = (await store.list(room)).get(node);
    if (stored === undefined) return;
    for (const userId of stored.keys()) {
      if (this.#host.view(room)?.local.has(userId) !== true) {
        await store.delete(room, node, userId);
      }
    }
  }
}
