/**
 * Revocations kept in this process only: what a single isolate needs, and
 * what `STORE=memory` gives every isolate of its own. A restart forgets them.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import type { StoreHealth } from "../types.ts";
import { revocationSettings, type RevocationStoreOptions } from "./_settings.ts";
import type { Revocation, RevocationKind, RevocationStore } from "./types.ts";
import { RevocationMap, soonestToLapse } from "./types.ts";

/** Options for {@linkcode MemoryRevocationStore}: the bound and clock. */
export type MemoryRevocationStoreOptions = RevocationStoreOptions;

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
  readonly kind = "memory";
  readonly shared = false;
  readonly #entries = new RevocationMap<Revocation>();
  readonly #max: number;
  readonly #clock: Clock;

  /** @param options bound and clock */
  constructor(options: MemoryRevocationStoreOptions = {}) {
    const { maxEntries, clock } = revocationSettings(options);
    this.#max = maxEntries;
    this.#clock = clock;
  }

  add(revocation: Revocation): Promise<Revocation | undefined> {
    const { kind, subject } = revocation;
    let evicted: Revocation | undefined;
    if (!this.#entries.has(kind, subject) && this.#entries.size >= this.#max) {
      this.#sweep();
      if (this.#entries.size >= this.#max) {
        evicted = soonestToLapse(this.#entries.values());
        if (evicted !== undefined) this.#entries.delete(evicted.kind, evicted.subject);
      }
    }
    this.#entries.set(kind, subject, { ...revocation });
    return Promise.resolve(evicted);
  }

  remove(kind: RevocationKind, subject: string): Promise<boolean> {
    const entry = this.#entries.get(kind, subject);
    this.#entries.delete(kind, subject);
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
    for (const entry of this.#entries.values()) {
      if (entry.until <= now) this.#entries.delete(entry.kind, entry.subject);
    }
  }
}
