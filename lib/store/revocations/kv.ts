/**
 * Revocations on Deno KV (`STORE=kv`): one entry per kind and subject under
 * `[…, "revocations", kind, subject]`, with `expireIn` a little past its
 * `until` (KV deletes expired keys lazily; activity is always judged by
 * `until` against the store's clock). Shared by every isolate on the same
 * database, and kept across restarts.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import { withRetry } from "../_kv.ts";
import type { Revocation, RevocationKind, RevocationStore, StoreHealth } from "./types.ts";
import { RevocationSchema, StoreUnavailableError } from "./types.ts";

/** Options for {@linkcode KvRevocationStore}. */
export interface KvRevocationStoreOptions {
  /** The database, or its coming handle (opened lazily by the caller); not closed by the store. */
  kv: Deno.Kv | Promise<Deno.Kv>;
  /** @default {["realtime"]} */
  prefix?: Deno.KvKey;
  /** Most active revocations held. @default 100_000 */
  maxEntries?: number;
  /** How long operations retry a failing database, in ms. @default 3000 */
  unavailableAfterMs?: number;
  /** Called once by `close`. */
  onClose?: () => void;
  /** @default systemClock */
  clock?: Clock;
}

/** KV keeps an expired key a while; this margin keeps KV from deleting one before `until` by our clock. */
const EXPIRY_MARGIN_MS = 60_000;

/**
 * The {@linkcode RevocationStore} on Deno KV.
 *
 * @example
 * ```ts ignore
 * const kv = await Deno.openKv(":memory:");
 * const store = new KvRevocationStore({ kv });
 * const now = Date.now();
 * await store.add({ kind: "user", subject: "alice", revokedAt: now, until: now + 60_000, by: "server" });
 * ```
 */
export class KvRevocationStore implements RevocationStore {
  readonly kind = "kv" as const;
  readonly shared = true;
  readonly #kv: Promise<Deno.Kv>;
  readonly #prefix: Deno.KvKey;
  readonly #max: number;
  readonly #unavailableAfterMs: number;
  readonly #onClose: () => void;
  readonly #clock: Clock;
  #failure: string | undefined;
  #closed = false;

  /** @param options the database, prefix, bound and clock */
  constructor(options: KvRevocationStoreOptions) {
    const {
      kv,
      prefix = ["realtime"],
      maxEntries = 100_000,
      unavailableAfterMs = 3000,
      onClose = () => {},
      clock = systemClock,
    } = options;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(
        `Cannot create revocation store: maxEntries must be a positive integer, current value is ${maxEntries}`,
      );
    }
    this.#kv = Promise.resolve(kv);
    this.#kv.catch(() => {});
    this.#prefix = prefix;
    this.#max = maxEntries;
    this.#unavailableAfterMs = unavailableAfterMs;
    this.#onClose = onClose;
    this.#clock = clock;
  }

  add(revocation: Revocation): Promise<boolean> {
    return this.#run("add a revocation", async (kv) => {
      const key = this.#key(revocation.kind, revocation.subject);
      const now = this.#clock.now();
      const existing = await kv.get(key);
      if (!this.#active(existing.value, now) && await this.#count(kv, now) >= this.#max) {
        return false;
      }
      await kv.set(key, { ...revocation }, {
        expireIn: Math.max(1, revocation.until - now) + EXPIRY_MARGIN_MS,
      });
      return true;
    });
  }

  remove(kind: RevocationKind, subject: string): Promise<boolean> {
    return this.#run("remove a revocation", async (kv) => {
      const key = this.#key(kind, subject);
      const existing = await kv.get(key);
      if (existing.versionstamp === null) return false;
      await kv.delete(key);
      return this.#active(existing.value, this.#clock.now());
    });
  }

  list(): Promise<Revocation[]> {
    return this.#run("list revocations", async (kv) => {
      const now = this.#clock.now();
      const out: Revocation[] = [];
      for await (const { value } of kv.list({ prefix: [...this.#prefix, "revocations"] })) {
        const parsed = RevocationSchema.safeParse(value);
        if (parsed.success && parsed.data.until > now) out.push(parsed.data);
      }
      return out;
    });
  }

  health(): StoreHealth {
    if (this.#closed) return { status: "degraded", transport: "kv", detail: "closed" };
    return this.#failure === undefined
      ? { status: "ok", transport: "kv" }
      : { status: "degraded", transport: "kv", detail: this.#failure };
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#onClose();
    }
    return Promise.resolve();
  }

  #key(kind: RevocationKind, subject: string): Deno.KvKey {
    return [...this.#prefix, "revocations", kind, subject];
  }

  #active(value: unknown, now: number): boolean {
    const parsed = RevocationSchema.safeParse(value);
    return parsed.success && parsed.data.until > now;
  }

  async #count(kv: Deno.Kv, now: number): Promise<number> {
    let active = 0;
    for await (const { value } of kv.list({ prefix: [...this.#prefix, "revocations"] })) {
      if (this.#active(value, now)) active++;
    }
    return active;
  }

  async #run<T>(what: string, operation: (kv: Deno.Kv) => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreUnavailableError("revocation store is closed");
    try {
      const kv = await this.#kv;
      const result = await withRetry(() => operation(kv), {
        what,
        unavailableAfterMs: this.#unavailableAfterMs,
        stopped: () => this.#closed,
      });
      this.#failure = undefined;
      return result;
    } catch (err) {
      if (err instanceof StoreUnavailableError) this.#failure = err.message;
      else if (!(err instanceof RangeError)) {
        // Opening the database failed.
        this.#failure = err instanceof Error ? err.message : String(err);
        throw new StoreUnavailableError(`cannot ${what}: ${this.#failure}`, 1000, { cause: err });
      }
      throw err;
    }
  }
}
