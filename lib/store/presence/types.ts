/**
 * The presence store: which users each instance has in each room, as entries
 * per (room, instance) that live `ttlMs` unless refreshed. The tracker
 * (`lib/core/presence/`) writes its own instance's entries, refreshes them with
 * heartbeats and reads other instances' entries through this interface; it
 * never knows which backend it talks to.
 *
 * Contract (every backend; the cases in `tests/_presence_contract.ts`, run on
 * each by `tests/presence_store_contract_test.ts`):
 * - `set` writes one user's entry for (room, instance) and marks the instance
 *   alive for `ttlMs`; `delete` removes it, and a room with no entry left
 *   keeps nothing (no key, no map).
 * - `heartbeat(instance, rooms)` keeps the instance and its entries in
 *   `rooms` alive for another `ttlMs`, and answers the rooms whose entries
 *   were gone (the backend lost them) so the caller can write them again.
 * - An instance not refreshed for `ttlMs` is no longer `alive`, and `list`
 *   no longer shows its entries.
 * - `drop(instance, rooms)` removes the instance's entries in `rooms` and its
 *   liveness at once (clean shutdown).
 *
 * @module
 */
import { z } from "zod";
import type { PresenceInfo } from "../../core/auth.ts";
import type { Backend } from "../types.ts";

/** One user on one instance in one room. */
export interface PresenceEntry {
  /** The `info` claim of the user's latest joining connection there. */
  info?: PresenceInfo;
  /** The user's connections to the room on that instance (at least 1). */
  connections: number;
}

/**
 * A presence `info` read back from a store or the bus: a JSON object (its
 * values came out of `JSON.parse`, so they are JSON). Its size was checked
 * when the token was.
 */
export const PresenceInfoSchema = z.custom<PresenceInfo>(
  (v) => typeof v === "object" && v !== null && !Array.isArray(v),
  "info must be a JSON object",
);

/** A {@linkcode PresenceEntry} read back from a store. */
export const PresenceEntrySchema = z.object({
  info: PresenceInfoSchema.optional(),
  connections: z.number().int().positive(),
});

/** Reads a stored entry's JSON; undefined when it is not one (not written by us). */
export function parseEntry(text: string): PresenceEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = PresenceEntrySchema.safeParse(value);
  if (!parsed.success) return undefined;
  const { info, connections } = parsed.data;
  return info === undefined ? { connections } : { info, connections };
}

/** A room's live entries: instance id → user id → entry. */
export type RoomEntries = Map<string, Map<string, PresenceEntry>>;

/** Where presence entries live; see the module doc for the contract. */
export interface PresenceStore extends Backend {
  /** How long an entry or instance lives without a refresh, in milliseconds. */
  readonly ttlMs: number;
  /** Writes `instance`'s entry for `userId` in `room`, and marks `instance` alive. */
  set(room: string, instance: string, userId: string, entry: PresenceEntry): Promise<void>;
  /** Removes `instance`'s entry for `userId` in `room` (nothing if there is none). */
  delete(room: string, instance: string, userId: string): Promise<void>;
  /**
   * Keeps `instance` and its entries in `rooms` alive for another `ttlMs`.
   * Resolves to the rooms of `rooms` where the instance had no entry left.
   */
  heartbeat(instance: string, rooms: readonly string[]): Promise<string[]>;
  /** Which of `instances` are alive (written or refreshed within `ttlMs`). */
  alive(instances: readonly string[]): Promise<Set<string>>;
  /** The live entries of `room`, by instance. */
  list(room: string): Promise<RoomEntries>;
  /** Removes `instance`'s entries in `rooms` and its liveness. */
  drop(instance: string, rooms: readonly string[]): Promise<void>;
}
