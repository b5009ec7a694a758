/**
 * Presence on Deno KV (`STORE=kv`), shared by every isolate on the same
 * database (the isolates of `deno serve --parallel`, a Deno Deploy app).
 *
 * Layout under the key prefix (`BUS_CHANNEL`):
 * - `[…, "presence", room, instance, userId]` → `{ entry, expiresAt }`: one
 *   user on one instance in one room, `expireIn` = the TTL, rewritten by every
 *   heartbeat of its instance.
 * - `[…, "presence-alive", instance]` → `{ expiresAt }`: the instance's
 *   liveness, `expireIn` = the TTL.
 *
 * An instance that stops (SIGKILL, a crashed isolate) stops refreshing: its
 * liveness and entries lapse within the TTL and `list` stops showing them.
 * KV deletes expired keys lazily, so validity is judged by the stored
 * `expiresAt` against the injected clock, and `list` and `alive` delete the
 * stale keys they come across.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import { getAll, KvHandle, type KvHandleOptions } from "../_kv.ts";
import type { StoreHealth } from "../types.ts";
import type { PresenceEntry, PresenceStore, RoomEntries } from "./types.ts";

/** Options for {@linkcode KvPresenceStore}. */
export interface KvPresenceStoreOptions extends KvHandleOptions {
  /** @default {["realtime"]} */
  prefix?: Deno.KvKey;
  /** @default {30000} */
  ttlMs?: number;
  /** Called when an operation gives up (the store is unavailable). */
  onError?: (error: Error) => void;
  /** @default systemClock */
  clock?: Clock;
}

interface StoredEntry {
  entry: PresenceEntry;
  expiresAt: number;
}

/** Mutations per commit when rewriting or deleting many entries (KV allows 1,000 and 800 KiB). */
const BATCH = 200;

/**
 * The {@linkcode PresenceStore} on Deno KV.
 *
 * @example
 * ```ts ignore
 * const kv = await Deno.openKv(":memory:");
 * const store = new KvPresenceStore({ kv, ttlMs: 30_000 });
 * await store.set("lobby", "instance-1", "alice", { connections: 1 });
 * ```
 */
export class KvPresenceStore implements PresenceStore {
  readonly kind = "kv";
  readonly ttlMs: number;
  readonly #handle: KvHandle;
  readonly #prefix: Deno.KvKey;
  readonly #clock: Clock;

  /** @param options the database, prefix, TTL and clock */
  constructor(options: KvPresenceStoreOptions) {
    const { prefix = ["realtime"], ttlMs = 30_000, onError = () => {}, clock = systemClock } =
      options;
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1) {
      throw new RangeError(
        `Cannot create presence store: ttlMs must be positive, current value is ${ttlMs}`,
      );
    }
    // Unlike tickets and revocations, presence reports a RangeError from KV as unavailability too.
    this.#handle = new KvHandle(options, {
      name: "presence store",
      onError,
      rangeErrorUnavailable: true,
    });
    this.#prefix = prefix;
    this.ttlMs = ttlMs;
    this.#clock = clock;
  }

  set(room: string, instance: string, userId: string, entry: PresenceEntry): Promise<void> {
    return this.#handle.run("write presence", async (kv) => {
      const expiresAt = this.#clock.now() + this.ttlMs;
      await kv.atomic()
        .set(this.#entryKey(room, instance, userId), { entry: { ...entry }, expiresAt }, {
          expireIn: this.ttlMs,
        })
        .set(this.#aliveKey(instance), { expiresAt }, { expireIn: this.ttlMs })
        .commit();
    });
  }

  delete(room: string, instance: string, userId: string): Promise<void> {
    return this.#handle.run(
      "delete presence",
      (kv) => kv.delete(this.#entryKey(room, instance, userId)),
    );
  }

  heartbeat(instance: string, rooms: readonly string[]): Promise<string[]> {
    return this.#handle.run("refresh presence", async (kv) => {
      const now = this.#clock.now();
      const expiresAt = now + this.ttlMs;
      await kv.set(this.#aliveKey(instance), { expiresAt }, { expireIn: this.ttlMs });
      const missing: string[] = [];
      for (const room of rooms) {
        const fresh: [Deno.KvKey, PresenceEntry][] = [];
        const stale: Deno.KvKey[] = [];
        for await (const { key, value } of kv.list({ prefix: this.#roomKey(room, instance) })) {
          if (isStored(value) && value.expiresAt > now) fresh.push([key, value.entry]);
          else stale.push(key);
        }
        await this.#deleteAll(kv, stale);
        if (fresh.length === 0) {
          missing.push(room);
          continue;
        }
        for (let i = 0; i < fresh.length; i += BATCH) {
          const atomic = kv.atomic();
          for (const [key, entry] of fresh.slice(i, i + BATCH)) {
            atomic.set(key, { entry, expiresAt }, { expireIn: this.ttlMs });
          }
          await atomic.commit();
        }
      }
      return missing;
    });
  }

  alive(instances: readonly string[]): Promise<Set<string>> {
    return this.#handle.run("read presence liveness", (kv) => this.#alive(kv, instances));
  }

  list(room: string): Promise<RoomEntries> {
    return this.#handle.run("list presence", async (kv) => {
      const now = this.#clock.now();
      const found = new Map<string, [Deno.KvKey, string, PresenceEntry][]>();
      const stale: Deno.KvKey[] = [];
      for await (const { key, value } of kv.list({ prefix: [...this.#prefix, "presence", room] })) {
        const instance = key[key.length - 2];
        const userId = key[key.length - 1];
        if (
          !isStored(value) || value.expiresAt <= now || typeof instance !== "string" ||
          typeof userId !== "string"
        ) {
          stale.push(key);
          continue;
        }
        let users = found.get(instance);
        if (users === undefined) found.set(instance, users = []);
        users.push([key, userId, value.entry]);
      }
      const alive = await this.#alive(kv, [...found.keys()]);
      const out: RoomEntries = new Map();
      for (const [instance, users] of found) {
        if (!alive.has(instance)) {
          // A dead instance's entries: gone for good (its heartbeat would report them missing).
          stale.push(...users.map(([key]) => key));
          continue;
        }
        out.set(instance, new Map(users.map(([, userId, entry]) => [userId, { ...entry }])));
      }
      await this.#deleteAll(kv, stale);
      return out;
    });
  }

  drop(instance: string, rooms: readonly string[]): Promise<void> {
    return this.#handle.run("drop presence", async (kv) => {
      const keys: Deno.KvKey[] = [this.#aliveKey(instance)];
      for (const room of rooms) {
        for await (const { key } of kv.list({ prefix: this.#roomKey(room, instance) })) {
          keys.push(key);
        }
      }
      await this.#deleteAll(kv, keys);
    });
  }

  health(): StoreHealth {
    return this.#handle.health();
  }

  close(): Promise<void> {
    return this.#handle.close();
  }

  #entryKey(room: string, instance: string, userId: string): Deno.KvKey {
    return [...this.#prefix, "presence", room, instance, userId];
  }

  #roomKey(room: string, instance: string): Deno.KvKey {
    return [...this.#prefix, "presence", room, instance];
  }

  #aliveKey(instance: string): Deno.KvKey {
    return [...this.#prefix, "presence-alive", instance];
  }

  async #alive(kv: Deno.Kv, instances: readonly string[]): Promise<Set<string>> {
    const now = this.#clock.now();
    const entries = await getAll(kv, instances.map((i) => this.#aliveKey(i)));
    const out = new Set<string>();
    const stale: Deno.KvKey[] = [];
    entries.forEach((entry, i) => {
      const value = entry.value as { expiresAt?: unknown } | null;
      if (typeof value?.expiresAt === "number" && value.expiresAt > now) out.add(instances[i]!);
      else if (entry.versionstamp !== null) stale.push(entry.key);
    });
    await this.#deleteAll(kv, stale);
    return out;
  }

  async #deleteAll(kv: Deno.Kv, keys: readonly Deno.KvKey[]): Promise<void> {
    for (let i = 0; i < keys.length; i += BATCH) {
      const atomic = kv.atomic();
      for (const key of keys.slice(i, i + BATCH)) atomic.delete(key);
      await atomic.commit();
    }
  }
}

function isStored(value: unknown): value is StoredEntry {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.expiresAt === "number" && typeof v.entry === "object" && v.entry !== null;
}
