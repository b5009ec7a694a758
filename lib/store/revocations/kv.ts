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
import { CONFLICT, KvHandle, type KvHandleOptions } from "../_kv.ts";
import type { StoreHealth } from "../types.ts";
import { revocationSettings, type RevocationStoreOptions } from "./_settings.ts";
import type { Revocation, RevocationKind, RevocationStore } from "./types.ts";
import { RevocationSchema } from "./types.ts";

/** Options for {@linkcode KvRevocationStore}. */
export interface KvRevocationStoreOptions extends RevocationStoreOptions, KvHandleOptions {
  /** @default {["realtime"]} */
  prefix?: Deno.KvKey;
  /** Told of each operation that gave up (the database is unavailable). */
  onError?: (error: Error) => void;
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
  readonly kind = "kv";
  readonly shared = true;
  readonly #handle: KvHandle;
  readonly #prefix: Deno.KvKey;
  readonly #max: number;
  readonly #clock: Clock;

  /** @param options the database, prefix, bound and clock */
  constructor(options: KvRevocationStoreOptions) {
    const { prefix = ["realtime"] } = options;
    const { maxEntries, clock } = revocationSettings(options);
    this.#handle = new KvHandle(options, {
      name: "revocation store",
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    });
    this.#prefix = prefix;
    this.#max = maxEntries;
    this.#clock = clock;
  }

  add(revocation: Revocation): Promise<Revocation | undefined> {
    return this.#handle.run("add a revocation", async (kv) => {
      const key = this.#key(revocation.kind, revocation.subject);
      const now = this.#clock.now();
      const existing = await kv.get(key);
      const op = kv.atomic().check(existing);
      let evicted: Revocation | undefined;
      if (!this.#active(existing.value, now)) {
        const { count, soonest } = await this.#scan(kv, now);
        if (count >= this.#max && soonest !== undefined) {
          // Dropped only if nobody changed it meanwhile; else the whole add retries.
          op.check(soonest.entry).delete(soonest.entry.key);
          evicted = soonest.revocation;
        }
      }
      op.set(key, { ...revocation }, {
        expireIn: Math.max(1, revocation.until - now) + EXPIRY_MARGIN_MS,
      });
      return (await op.commit()).ok ? evicted : CONFLICT;
    });
  }

  remove(kind: RevocationKind, subject: string): Promise<boolean> {
    return this.#handle.run("remove a revocation", async (kv) => {
      const key = this.#key(kind, subject);
      const existing = await kv.get(key);
      if (existing.versionstamp === null) return false;
      await kv.delete(key);
      return this.#active(existing.value, this.#clock.now());
    });
  }

  list(): Promise<Revocation[]> {
    return this.#handle.run("list revocations", async (kv) => {
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
    return this.#handle.health();
  }

  close(): Promise<void> {
    return this.#handle.close();
  }

  #key(kind: RevocationKind, subject: string): Deno.KvKey {
    return [...this.#prefix, "revocations", kind, subject];
  }

  #active(value: unknown, now: number): boolean {
    const parsed = RevocationSchema.safeParse(value);
    return parsed.success && parsed.data.until > now;
  }

  /** How many entries are active, and the one that lapses soonest. */
  async #scan(
    kv: Deno.Kv,
    now: number,
  ): Promise<
    { count: number; soonest?: { entry: Deno.KvEntry<unknown>; revocation: Revocation } }
  > {
    let count = 0;
    let soonest: { entry: Deno.KvEntry<unknown>; revocation: Revocation } | undefined;
    for await (const entry of kv.list({ prefix: [...this.#prefix, "revocations"] })) {
      const parsed = RevocationSchema.safeParse(entry.value);
      if (!parsed.success || parsed.data.until <= now) continue;
      count++;
      if (soonest === undefined || parsed.data.until < soonest.revocation.until) {
        soonest = { entry, revocation: parsed.data };
      }
    }
    return soonest === undefined ? { count } : { count, soonest };
  }
}
