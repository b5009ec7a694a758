/**
 * Revocations: the users and tokens an operator cut off before their tokens
 * expire. One interface; one file per backend (`memory.ts`, `redis.ts`,
 * `kv.ts`), all held to one contract: the cases in
 * `tests/_revocations_contract.ts`, run on each by
 * `tests/revocation_store_contract_test.ts`.
 *
 * The store is the durable list every instance loads at start and re-reads
 * now and then; the bus carries each change to the running instances at once
 * (see `lib/core/revocations.ts`). Sessions never talk to the store.
 *
 * @module
 */
import { z } from "zod";
import type { Backend } from "../types.ts";

/** What a revocation names: every token of a user, or one token by its `jti`. */
export type RevocationKind = Revocation["kind"];

/** Longest user id, token id or reason accepted, in characters. */
export const MAX_SUBJECT_LENGTH = 256;
/**
 * Longest `reason` accepted, in characters: enough for a sentence. Each entry
 * is bounded (two ids of 256 and this), so `maxEntries` bounds the memory.
 */
export const MAX_REASON_LENGTH = 200;

/**
 * One active revocation, as stored and as carried on the bus. Times are
 * milliseconds since the epoch.
 */
export const RevocationSchema = z.strictObject({
  /** `user`: tokens of `subject` issued at or before `revokedAt`; `jti`: the token whose `jti` is `subject`. */
  kind: z.enum(["user", "jti"]),
  /** The user id (`sub`) or the token id (`jti`). */
  subject: z.string().min(1).max(MAX_SUBJECT_LENGTH),
  /** When it was made; for `user`, tokens with `iat` after this are not concerned. */
  revokedAt: z.number().int().nonnegative(),
  /** When it lapses by itself. */
  until: z.number().int().nonnegative(),
  /** Who asked: `"server"` for the API key, or the admin's user id. */
  by: z.string().max(MAX_SUBJECT_LENGTH),
  /** Free text given by the caller, for the audit log and `GET /api/revoke`. */
  reason: z.string().max(MAX_REASON_LENGTH).optional(),
});
/** One active revocation (see {@linkcode RevocationSchema}). */
export type Revocation = z.infer<typeof RevocationSchema>;

/** The store key of a revocation: one entry per kind and subject. */
export function revocationKey(kind: RevocationKind, subject: string): string {
  return `${kind}:${subject}`;
}

/**
 * A map keyed by kind and subject without building `kind:subject` strings:
 * the subject the entry already holds is the key, so a set of 100,000
 * revocations does not pay for a second copy of each id.
 */
export class RevocationMap<V> {
  readonly #maps: Record<RevocationKind, Map<string, V>> = { user: new Map(), jti: new Map() };

  /** Entries of both kinds. */
  get size(): number {
    return this.#maps.user.size + this.#maps.jti.size;
  }

  /** The value for this kind and subject. */
  get(kind: RevocationKind, subject: string): V | undefined {
    return this.#maps[kind].get(subject);
  }

  /** Whether there is a value for this kind and subject. */
  has(kind: RevocationKind, subject: string): boolean {
    return this.#maps[kind].has(subject);
  }

  /** Sets the value for this kind and subject. */
  set(kind: RevocationKind, subject: string, value: V): void {
    this.#maps[kind].set(subject, value);
  }

  /** Deletes; true when there was a value. */
  delete(kind: RevocationKind, subject: string): boolean {
    return this.#maps[kind].delete(subject);
  }

  /** Empties both kinds. */
  clear(): void {
    this.#maps.user.clear();
    this.#maps.jti.clear();
  }

  /** Every value, users first (deleting the current one while iterating is safe). */
  *values(): IterableIterator<V> {
    yield* this.#maps.user.values();
    yield* this.#maps.jti.values();
  }
}

/**
 * The active revocation that lapses soonest among `entries`, the one a full
 * store drops to make room.
 */
export function soonestToLapse(entries: Iterable<Revocation>): Revocation | undefined {
  let soonest: Revocation | undefined;
  for (const r of entries) if (soonest === undefined || r.until < soonest.until) soonest = r;
  return soonest;
}

/**
 * Where revocations are kept.
 *
 * Contract (every backend, checked by the contract suite):
 * - `add` keeps one entry per kind and subject: adding again replaces it.
 * - An entry is active while `until` is after the store's clock; inactive ones
 *   are never listed and are dropped by the store itself.
 * - `add` never refuses: with `maxEntries` active entries held, a new
 *   subject takes the place of the active entry that lapses soonest (which
 *   `add` returns), so a real ban always gets in; replacing is in place.
 * - Faults of the backend reject with `StoreUnavailableError` (lib/store/types.ts).
 */
export interface RevocationStore extends Backend {
  /**
   * True when every instance sees the same entries (Redis, KV): instances
   * load them at start and re-read them periodically. False for a
   * per-process store, which a restart empties.
   */
  readonly shared: boolean;
  /**
   * Stores a revocation, replacing any for the same kind and subject. When
   * the store is full, drops the active entry that lapses soonest and
   * returns it.
   *
   * @throws {StoreUnavailableError}
   */
  add(revocation: Revocation): Promise<Revocation | undefined>;
  /**
   * Removes the revocation of this kind and subject; true when an active one
   * was there.
   *
   * @throws {StoreUnavailableError}
   */
  remove(kind: RevocationKind, subject: string): Promise<boolean>;
  /**
   * Every active revocation, in no particular order (used at start, for the
   * periodic re-sync and by tests).
   *
   * @throws {StoreUnavailableError}
   */
  list(): Promise<Revocation[]>;
}
