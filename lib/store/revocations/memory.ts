/**
 * Revocations kept in this process only: what a single isolate needs, and
 * what `STORE=memory` gives every isolate of its own. A restart forgets them.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import type { Revocation, RevocationKind, RevocationStore, StoreHealth } from "./types.ts";
import { revocationKey } from "./types.ts";

/** Options for {@linkcode MemoryRevocationStore}. */
export interface MemoryRevocationStoreOptions {
  /** Most active revocations held. @default 100_000 */
  maxEntries?: number;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * The per-process {@linkcode RevocationStore}.
 *
 * @example
 * ```ts
 * import { MemoryRevocationStore } from "./memory.ts";
 * const store = new MemoryRevocationStore();
 * const now = Date.now();
 * await store.add({ kind: "user", subject: "alice", revokedAt: now, until: now + 60_000, by: "server" });
 * ```
 */
export class MemoryRevocationStore implements RevocationStore {
  readonly kind = "memory" as const;
  readonly shared = false;
  readonly #entries = new Map<string, Revocation>();
  readonly #max: number;
  readonly #clock: Clock;

  /** @param options bound and clock */
  constructor(options: MemoryRevocationStoreOptions = {}) {
    const { maxEntries = 100_000, clock = systemClock } = options;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(
        `Cannot create revocation store: maxEntries must be a positive integer, current value is ${maxEntries}`,
      );
    }
    this.#max = maxEntries;
    this.#clock = clock;
  }

  add(revocation: Revocation): Promise<boolean> {
    const key = revocationKey(revocation.kind, revocation.subject);
    if (!this.#entries.has(key) && this.#entries.size >= this.#max) this.#sweep();
    if (!this.#entries.has(key) && this.#entries.size >= this.#max) {
      return Promise.resolve(false);
    }
    this.#entries.set(key, { ...revocation });
    return Promise.resolve(true);
  }

  remove(kind: RevocationKind, subject: string): Promise<boolean> {
    const key = revocationKey(kind, subject);
    const entry = this.#entries.get(key);
    this.#entries.delete(key);
    return Promise.resolve(entry !== undefined && entry.until > this.#clock.now());
  }

  list(): Promise<Revocation[]> {
    this.#sweep();
    return Promise.resolve([...this.#entries.values()].map((r) => ({ ...r })));
  }

  health(): StoreHealth {
    return { status: "ok", transport: "memory" };
  }

  close(): Promise<void> {
    this.#entries.clear();
    return Promise.resolve();
  }

  #sweep(): void {
    const now = this.#clock.now();
    for (const [key, entry] of this.#entries) {
      if (entry.until <= now) this.#entries.delete(key);
    }
  }
}
