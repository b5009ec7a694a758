/**
 * Revocations: the users and tokens an operator cut off before their tokens
 * expire. One interface; one file per backend (`memory.ts`, `redis.ts`,
 * `kv.ts`), all held to one contract test suite
 * (`tests/revocation_store_contract_test.ts`).
 *
 * The store is the durable list every instance loads at start and re-reads
 * now and then; the bus carries each change to the running instances at once
 * (see `lib/revocations.ts`). Sessions never talk to the store.
 *
 * @module
 */
import { z } from "zod";
import type { StoreHealth } from "../history/types.ts";

export type { StoreHealth } from "../history/types.ts";
export { StoreUnavailableError } from "../history/types.ts";

/** What a revocation names: every token of a user, or one token by its `jti`. */
export type RevocationKind = Revocation["kind"];

/** Longest user id, token id or reason accepted, in characters. */
export const MAX_SUBJECT_LENGTH = 256;
/** Longest `reason` accepted, in characters. */
export const MAX_REASON_LENGTH = 500;

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
 * Where revocations are kept.
 *
 * Contract (every backend, checked by the contract suite):
 * - `add` keeps one entry per kind and subject: adding again replaces it.
 * - An entry is active while `until` is after the store's clock; inactive ones
 *   are never listed and are dropped by the store itself.
 * - `add` refuses (returns false) a new subject when `maxEntries` active
 *   entries are held; replacing an existing one is always accepted.
 * - Faults of the backend reject with {@linkcode StoreUnavailableError}.
 */
export interface RevocationStore {
  /** Backend name. */
  readonly kind: "memory" | "redis" | "kv";
  /**
   * True when every instance sees the same entries (Redis, KV): instances
   * load them at start and re-read them periodically. False for a
   * per-process store, which a restart empties.
   */
  readonly shared: boolean;
  /**
   * Stores a revocation, replacing any for the same kind and subject.
   * Returns false, storing nothing, when the store is full.
   *
   * @throws {StoreUnavailableError}
   */
  add(revocation: Revocation): Promise<boolean>;
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
  /** Current health. */
  health(): StoreHealth;
  /** Releases connections and timers; idempotent. */
  close(): Promise<void>;
}
