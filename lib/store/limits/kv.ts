/**
 * Shared limits in Deno KV (`LIMITS_STORE=kv`): a token bucket per key
 * (`[prefix, "limits", "b", key]` → `{t, a}`), and per counted key one entry
 * holding each node's count and expiry (`[prefix, "limits", "c", key]` →
 * `{node: [count, expiresAt]}`). Every decision is one atomic commit checked
 * against what it read (a lost check is read again and retried); entries
 * expire with their bucket's refill or their counts' lifetime.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import { CONFLICT, KvHandle, type KvHandleOptions } from "../_kv.ts";
import type { StoreHealth } from "../types.ts";
import { type BucketRule, drawBucket, type Lease, type LimitsStore, refillMs } from "./types.ts";

/** Options for {@linkcode KvLimitsStore}. */
export interface KvLimitsStoreOptions extends KvHandleOptions {
  /** First parts of every key. @default ["realtime"] */
  prefix?: Deno.KvKey;
  /** A node's count lives this long after its last write. @default 30_000 */
  ttlMs?: number;
  /** @default systemClock */
  clock?: Clock;
  /** Told of each operation that gave up. */
  onError?: (error: Error) => void;
}

/** Each node's count and its expiry. */
type Counts = Record<string, [number, number]>;

/**
 * The shared {@linkcode LimitsStore} on Deno KV.
 *
 * @example
 * ```ts ignore
 * const store = new KvLimitsStore({ kv: await Deno.openKv(":memory:") });
 * await store.acquire("u:alice", "node-a", 2); // true
 * ```
 */
export class KvLimitsStore implements LimitsStore {
  readonly kind = "kv";
  readonly ttlMs: number;
  readonly #handle: KvHandle;
  readonly #base: Deno.KvKey;
  readonly #clock: Clock;

  /** @param options the database, prefix, TTL and clock */
  constructor(options: KvLimitsStoreOptions) {
    // A decision waits at most a second for the database: past it, limits fall back.
    this.#handle = new KvHandle({ unavailableAfterMs: 1000, ...options }, {
      name: "limits store",
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    });
    this.#base = [...options.prefix ?? ["realtime"], "limits"];
    this.ttlMs = options.ttlMs ?? 30_000;
    this.#clock = options.clock ?? systemClock;
  }

  take(key: string, want: number, rule: BucketRule): Promise<Lease> {
    const at = [...this.#base, "b", key];
    return this.#handle.run("take tokens", async (kv) => {
      const entry = await kv.get<{ t: number; a: number }>(at);
      const state = entry.value === null ? undefined : { tokens: entry.value.t, at: entry.value.a };
      const drawn = drawBucket(state, want, rule, this.#clock.now());
      const op = kv.atomic().check(entry).set(at, { t: drawn.tokens, a: drawn.at }, {
        expireIn: refillMs(drawn.tokens, rule),
      });
      return (await op.commit()).ok ? drawn.lease : CONFLICT;
    });
  }

  acquire(key: string, node: string, limit: number): Promise<boolean> {
    return this.#update("count a connection", key, (counts, total) => {
      if (total + 1 > limit) return undefined;
      return { ...counts, [node]: [(counts[node]?.[0] ?? 0) + 1, this.#expiry()] };
    }).then(({ written }) => written);
  }

  async release(key: string, node: string): Promise<void> {
    await this.#update("release a connection", key, (counts) => {
      const mine = counts[node]?.[0];
      return mine === undefined ? undefined : this.#with(counts, node, mine - 1);
    });
  }

  async refresh(node: string, counts: ReadonlyMap<string, number>): Promise<void> {
    await Promise.all(
      [...counts].map(([key, count]) =>
        this.#update("refresh counts", key, (all) => this.#with(all, node, count))
      ),
    );
  }

  count(key: string): Promise<number> {
    return this.#update("read counts", key, () => undefined).then(({ total }) => total);
  }

  health(): StoreHealth {
    return this.#handle.health();
  }

  close(): Promise<void> {
    return this.#handle.close();
  }

  #expiry(): number {
    return this.#clock.now() + this.ttlMs;
  }

  #with(counts: Counts, node: string, count: number): Counts {
    const next = { ...counts };
    if (count > 0) next[node] = [count, this.#expiry()];
    else delete next[node];
    return next;
  }

  /**
   * Reads `key`'s live counts and, when `change` answers new ones, writes
   * them in one checked commit. Resolves the live total before the change,
   * and whether anything was written.
   */
  #update(
    what: string,
    key: string,
    change: (counts: Counts, total: number) => Counts | undefined,
  ): Promise<{ total: number; written: boolean }> {
    const at = [...this.#base, "c", key];
    return this.#handle.run(what, async (kv) => {
      const entry = await kv.get<Counts>(at);
      const now = this.#clock.now();
      const live: Counts = {};
      let total = 0;
      for (const [node, [count, expiresAt]] of Object.entries(entry.value ?? {})) {
        if (expiresAt < now) continue;
        live[node] = [count, expiresAt];
        total += count;
      }
      const next = change(live, total);
      if (next === undefined) return { total, written: false };
      const op = kv.atomic().check(entry);
      if (Object.keys(next).length === 0) op.delete(at);
      // Kept a minute past the counts' lifetime: their expiry is decided by `now`.
      else op.set(at, next, { expireIn: this.ttlMs + 60_000 });
      return (await op.commit()).ok ? { total, written: true } : CONFLICT;
    });
  }
}
