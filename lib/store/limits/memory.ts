/**
 * Shared limits in this isolate's memory: the contract's reference, and what
 * a test runs two nodes on in one process. Buckets that refilled and counts
 * that expired are dropped as they are met.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import type { StoreHealth } from "../types.ts";
import { type BucketRule, drawBucket, type Lease, type LimitsStore } from "./types.ts";

/** Options for {@linkcode MemoryLimitsStore}. */
export interface MemoryLimitsStoreOptions {
  /** A node's count lives this long after its last write. @default 30_000 */
  ttlMs?: number;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * The per-isolate {@linkcode LimitsStore}.
 *
 * @example
 * ```ts ignore
 * const store = new MemoryLimitsStore();
 * await store.acquire("u:alice", "node-a", 2); // true
 * ```
 */
export class MemoryLimitsStore implements LimitsStore {
  readonly kind = "memory";
  readonly ttlMs: number;
  readonly #clock: Clock;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  /** key → node → count and expiry. */
  readonly #counts = new Map<string, Map<string, { count: number; expiresAt: number }>>();

  /** @param options TTL and clock */
  constructor(options: MemoryLimitsStoreOptions = {}) {
    const { ttlMs = 30_000, clock = systemClock } = options;
    this.ttlMs = ttlMs;
    this.#clock = clock;
  }

  take(key: string, want: number, rule: BucketRule): Promise<Lease> {
    const drawn = drawBucket(this.#buckets.get(key), want, rule, this.#clock.now());
    if (drawn.tokens >= rule.capacity) this.#buckets.delete(key);
    else this.#buckets.set(key, { tokens: drawn.tokens, at: drawn.at });
    return Promise.resolve(drawn.lease);
  }

  acquire(key: string, node: string, limit: number): Promise<boolean> {
    const nodes = this.#live(key);
    let total = 0;
    for (const { count } of nodes.values()) total += count;
    if (total + 1 > limit) return Promise.resolve(false);
    const mine = nodes.get(node)?.count ?? 0;
    nodes.set(node, { count: mine + 1, expiresAt: this.#clock.now() + this.ttlMs });
    this.#counts.set(key, nodes);
    return Promise.resolve(true);
  }

  release(key: string, node: string): Promise<void> {
    const nodes = this.#live(key);
    const mine = nodes.get(node);
    if (mine !== undefined) this.#write(key, nodes, node, mine.count - 1);
    return Promise.resolve();
  }

  refresh(node: string, counts: ReadonlyMap<string, number>): Promise<void> {
    for (const [key, count] of counts) this.#write(key, this.#live(key), node, count);
    return Promise.resolve();
  }

  count(key: string): Promise<number> {
    let total = 0;
    for (const { count } of this.#live(key).values()) total += count;
    return Promise.resolve(total);
  }

  health(): StoreHealth {
    return { status: "ok", transport: "memory" };
  }

  close(): Promise<void> {
    this.#buckets.clear();
    this.#counts.clear();
    return Promise.resolve();
  }

  /** The live counts of `key` (expired ones dropped). */
  #live(key: string): Map<string, { count: number; expiresAt: number }> {
    const nodes = this.#counts.get(key) ?? new Map();
    const now = this.#clock.now();
    for (const [node, { expiresAt }] of nodes) if (expiresAt < now) nodes.delete(node);
    if (nodes.size === 0) this.#counts.delete(key);
    return nodes;
  }

  #write(
    key: string,
    nodes: Map<string, { count: number; expiresAt: number }>,
    node: string,
    count: number,
  ): void {
    if (count > 0) {
      nodes.set(node, { count, expiresAt: this.#clock.now() + this.ttlMs });
      this.#counts.set(key, nodes);
      return;
    }
    nodes.delete(node);
    if (nodes.size === 0) this.#counts.delete(key);
  }
}
