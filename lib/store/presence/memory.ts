/**
 * The presence store in this isolate's memory: the truth for one isolate
 * (`BUS=memory`); on another bus (a per-isolate store) other instances' users and
 * liveness come from the bus instead (`lib/core/presence/gossip.ts`).
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import type { StoreHealth } from "../types.ts";
import type { PresenceEntry, PresenceStore, RoomEntries } from "./types.ts";

/** Options for {@linkcode MemoryPresenceStore}. */
export interface MemoryPresenceStoreOptions {
  /** @default {30000} */
  ttlMs?: number;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * A {@linkcode PresenceStore} in memory. Expiry is lazy: an instance past its
 * deadline is forgotten when it is next asked about, so the store owns no timer.
 *
 * @example
 * ```ts
 * import { MemoryPresenceStore } from "./memory.ts";
 * const store = new MemoryPresenceStore({ ttlMs: 30_000 });
 * await store.set("lobby", "instance-1", "alice", { connections: 1 });
 * (await store.list("lobby")).get("instance-1")?.get("alice"); // { connections: 1 }
 * ```
 */
export class MemoryPresenceStore implements PresenceStore {
  readonly kind = "memory";
  readonly ttlMs: number;
  readonly #clock: Clock;
  readonly #rooms = new Map<string, RoomEntries>();
  /** Instance → the time it stops being alive. */
  readonly #deadlines = new Map<string, number>();
  /** Instance → rooms where it has entries, so expiry and `drop` need not scan every room. */
  readonly #roomsOf = new Map<string, Set<string>>();
  #lastSweep = 0;

  /** @param options TTL and clock */
  constructor(options: MemoryPresenceStoreOptions = {}) {
    const { ttlMs = 30_000, clock = systemClock } = options;
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) {
      throw new RangeError(
        `Cannot create presence store: ttlMs must be positive, current value is ${ttlMs}`,
      );
    }
    this.ttlMs = ttlMs;
    this.#clock = clock;
  }

  /** Rooms with at least one entry (for leak tests). */
  get size(): number {
    return this.#rooms.size;
  }

  /** Instances known alive or not yet expired (for leak tests). */
  get instances(): number {
    return this.#deadlines.size;
  }

  set(room: string, instance: string, userId: string, entry: PresenceEntry): Promise<void> {
    this.#touch(instance);
    let entries = this.#rooms.get(room);
    if (entries === undefined) this.#rooms.set(room, entries = new Map());
    let users = entries.get(instance);
    if (users === undefined) entries.set(instance, users = new Map());
    users.set(userId, { ...entry });
    let rooms = this.#roomsOf.get(instance);
    if (rooms === undefined) this.#roomsOf.set(instance, rooms = new Set());
    rooms.add(room);
    return Promise.resolve();
  }

  delete(room: string, instance: string, userId: string): Promise<void> {
    const users = this.#rooms.get(room)?.get(instance);
    if (users !== undefined && users.delete(userId) && users.size === 0) {
      this.#forget(room, instance);
    }
    return Promise.resolve();
  }

  heartbeat(instance: string, rooms: readonly string[]): Promise<string[]> {
    this.#sweep();
    this.#expire(instance);
    this.#touch(instance);
    const own = this.#roomsOf.get(instance);
    return Promise.resolve(rooms.filter((room) => own === undefined || !own.has(room)));
  }

  alive(instances: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (const instance of instances) if (!this.#expire(instance)) out.add(instance);
    return Promise.resolve(out);
  }

  list(room: string): Promise<RoomEntries> {
    const out: RoomEntries = new Map();
    const entries = this.#rooms.get(room);
    if (entries === undefined) return Promise.resolve(out);
    for (const instance of [...entries.keys()]) {
      if (this.#expire(instance)) continue;
      const users = entries.get(instance)!;
      out.set(instance, new Map([...users].map(([u, e]) => [u, { ...e }])));
    }
    return Promise.resolve(out);
  }

  drop(instance: string, rooms: readonly string[]): Promise<void> {
    for (const room of rooms) this.#forget(room, instance);
    // Entries left in other rooms now belong to a dead instance: they go at the next read.
    this.#deadlines.delete(instance);
    return Promise.resolve();
  }

  health(): StoreHealth {
    return { status: "ok", transport: "memory" };
  }

  close(): Promise<void> {
    this.#rooms.clear();
    this.#deadlines.clear();
    this.#roomsOf.clear();
    return Promise.resolve();
  }

  /** Forgets every expired instance once per TTL, so instances that died unasked do not pile up. */
  #sweep(): void {
    const now = this.#clock.now();
    if (now - this.#lastSweep < this.ttlMs) return;
    this.#lastSweep = now;
    for (const instance of [...this.#deadlines.keys()]) this.#expire(instance);
  }

  #touch(instance: string): void {
    this.#deadlines.set(instance, this.#clock.now() + this.ttlMs);
  }

  /** Forgets `instance` everywhere if its deadline passed; returns whether it did. */
  #expire(instance: string): boolean {
    const deadline = this.#deadlines.get(instance);
    if (deadline !== undefined && deadline > this.#clock.now()) return false;
    this.#deadlines.delete(instance);
    for (const room of [...this.#roomsOf.get(instance) ?? []]) this.#forget(room, instance);
    return true;
  }

  #forget(room: string, instance: string): void {
    const entries = this.#rooms.get(room);
    if (entries?.delete(instance) && entries.size === 0) this.#rooms.delete(room);
    const rooms = this.#roomsOf.get(instance);
    if (rooms?.delete(room) && rooms.size === 0) this.#roomsOf.delete(instance);
  }
}
