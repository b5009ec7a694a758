/**
 * A {@linkcode RateLimiter} whose buckets are the cluster's (`LIMITS_STORE`):
 * each key's tokens are leased from the shared bucket in chunks (`lease`
 * tokens per store round trip, taken again when half are spent), so most
 * decisions are made here with no round trip, synchronously as before. A key
 * seen for the first time is let through on credit (at most one lease) while
 * its first lease is fetched; a shared bucket found empty refuses the key
 * until its next token. So n isolates give a user at most one bucket plus
 * one lease each, not n buckets. While the store does not answer, decisions
 * fall back to this isolate's own buckets (the base class) and the store is
 * tried again once a second.
 *
 * @module
 */
import { RateLimiter, type RateLimiterOptions } from "./rate_limiter.ts";
import type { SharedLimits } from "./shared_limits.ts";
import type { BucketRule } from "../store/limits/types.ts";

/** Options for {@linkcode SharedRateLimiter}. */
export interface SharedRateLimiterOptions extends RateLimiterOptions {
  /** The limits store and whether it answers. */
  shared: SharedLimits;
  /** What the buckets limit (`m`: messages, `h`: handshakes), the first part of their keys. */
  space: string;
  /** Tokens leased per store round trip. @default ceil(capacity / 10) */
  lease?: number;
}

/** One key's leased tokens. */
interface Leased {
  /** Tokens left (below zero: taken on credit, paid by the lease under way). */
  tokens: number;
  /** No token before this time: the shared bucket was empty. */
  deniedUntil: number;
  /** A lease is being fetched. */
  fetching: boolean;
  /** Tokens the next fetch asks for: doubled while demand outruns the round trips. */
  want: number;
  /** Last use, for the sweep. */
  usedAt: number;
}

/** What a message refused while its lease is on the way is told to wait. */
const ROUND_TRIP_WAIT_MS = 50;

/** A lease unused this long is dropped by the sweep (its tokens were the cluster's). */
const IDLE_MS = 10_000;

/**
 * The shared limiter.
 *
 * @example
 * ```ts ignore
 * const limiter = new SharedRateLimiter({ capacity: 50, refillPerSec: 10, shared, space: "m" });
 * limiter.take("alice"); // 0: allowed (from the lease); else ms to wait
 * ```
 */
export class SharedRateLimiter extends RateLimiter {
  readonly #shared: SharedLimits;
  readonly #space: string;
  readonly #lease: number;
  readonly #rule: BucketRule;
  readonly #maxKeys: number;
  readonly #leases = new Map<string, Leased>();

  /** @param options the bucket, the store and the lease size */
  constructor(options: SharedRateLimiterOptions) {
    super(options);
    const { capacity, refillPerSec, maxKeys = 1_000_000 } = options;
    this.#shared = options.shared;
    this.#space = options.space;
    this.#lease = Math.max(1, Math.min(capacity, options.lease ?? Math.ceil(capacity / 10)));
    this.#rule = { capacity, refillPerSec };
    this.#maxKeys = maxKeys;
  }

  /** Keys tracked: leases and the fallback's buckets. */
  override get size(): number {
    return super.size + this.#leases.size;
  }

  /** See {@linkcode RateLimiter.take}: from the lease, else on credit, else refused. */
  override take(key: string, cost = 1): number {
    const shared = this.#shared;
    if (!shared.up) {
      const wait = super.take(key, cost);
      if (shared.probe()) this.#fetch(key, this.#leased(key, shared.clock.now()));
      return wait;
    }
    const now = shared.clock.now();
    const leased = this.#leased(key, now);
    if (leased === undefined) return 1000;
    leased.usedAt = now;
    if (leased.tokens >= cost) {
      leased.tokens -= cost;
      if (leased.tokens < this.#lease / 2) this.#fetch(key, leased);
      return 0;
    }
    if (now < leased.deniedUntil) return leased.deniedUntil - now;
    this.#fetch(key, leased);
    // On credit while the lease is fetched: at most one lease ahead of the store.
    if (leased.tokens - cost >= -this.#lease) {
      leased.tokens -= cost;
      return 0;
    }
    // A burst faster than the round trips: ask for more next time, and retry shortly.
    leased.want = Math.min(this.#rule.capacity, leased.want * 2);
    return Math.min(ROUND_TRIP_WAIT_MS, Math.ceil(1000 / this.#rule.refillPerSec));
  }

  /** Drops idle leases and the fallback's full buckets. */
  override sweep(): void {
    super.sweep();
    const now = this.#shared.clock.now();
    for (const [key, leased] of this.#leases) {
      if (!leased.fetching && leased.tokens >= 0 && now - leased.usedAt > IDLE_MS) {
        this.#leases.delete(key);
      }
    }
  }

  /** Forgets every key. */
  override clear(): void {
    super.clear();
    this.#leases.clear();
  }

  #leased(key: string, now: number): Leased | undefined {
    let leased = this.#leases.get(key);
    if (leased !== undefined) return leased;
    if (this.#leases.size >= this.#maxKeys) {
      this.sweep();
      if (this.#leases.size >= this.#maxKeys) return undefined;
    }
    leased = { tokens: 0, deniedUntil: 0, fetching: false, want: this.#lease, usedAt: now };
    this.#leases.set(key, leased);
    return leased;
  }

  /** Takes a lease (and what is owed) from the shared bucket, unless one is under way. */
  #fetch(key: string, leased: Leased | undefined): void {
    if (leased === undefined || leased.fetching) return;
    leased.fetching = true;
    const shared = this.#shared;
    const want = Math.min(this.#rule.capacity, leased.want + Math.max(0, -leased.tokens));
    shared.calls++;
    shared.store.take(`${this.#space}:${key}`, want, this.#rule).then(
      ({ granted, waitMs }) => {
        leased.tokens += granted;
        if (granted < want) {
          leased.deniedUntil = shared.clock.now() + waitMs;
          leased.want = this.#lease;
        }
        shared.succeeded();
      },
      (err) => shared.failed(err),
    ).finally(() => leased.fetching = false);
  }
}
