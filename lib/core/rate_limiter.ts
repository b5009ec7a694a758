/**
 * Token buckets keyed by a string (a user id, an IP). Lazy refill: a bucket is
 * only touched when its key acts, so idle keys cost nothing but their entry,
 * and full idle entries are swept.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";

/** Options for {@linkcode RateLimiter}. */
export interface RateLimiterOptions {
  /** Burst size: tokens in a full bucket. */
  capacity: number;
  /** Tokens added per second. */
  refillPerSec: number;
  /** Most keys tracked; past it, new keys are refused until a sweep frees room. @default 1_000_000 */
  maxKeys?: number;
  /** @default systemClock */
  clock?: Clock;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * A keyed token-bucket limiter.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "./rate_limiter.ts";
 * const limiter = new RateLimiter({ capacity: 50, refillPerSec: 10 });
 * const wait = limiter.take("alice"); // 0 when allowed, else ms to wait
 * ```
 */
export class RateLimiter {
  readonly #capacity: number;
  readonly #perMs: number;
  readonly #maxKeys: number;
  readonly #clock: Clock;
  readonly #buckets = new Map<string, Bucket>();

  /** @param options capacity and refill rate */
  constructor(options: RateLimiterOptions) {
    const { capacity, refillPerSec, maxKeys = 1_000_000, clock = systemClock } = options;
    if (!(capacity >= 1)) throw new RangeError(`Cannot create limiter: capacity is ${capacity}`);
    if (!(refillPerSec > 0)) {
      throw new RangeError(`Cannot create limiter: refillPerSec is ${refillPerSec}`);
    }
    this.#capacity = capacity;
    this.#perMs = refillPerSec / 1000;
    this.#maxKeys = maxKeys;
    this.#clock = clock;
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Takes `cost` tokens from `key`'s bucket. Returns 0 when they were taken,
   * otherwise the milliseconds until they would be available (nothing taken).
   */
  take(key: string, cost = 1): number {
    const now = this.#clock.now();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxKeys) {
        this.sweep();
        if (this.#buckets.size >= this.#maxKeys) return 1000;
      }
      bucket = { tokens: this.#capacity, updatedAt: now };
      this.#buckets.set(key, bucket);
    } else {
      const elapsed = Math.max(0, now - bucket.updatedAt);
      bucket.tokens = Math.min(this.#capacity, bucket.tokens + elapsed * this.#perMs);
      bucket.updatedAt = now;
    }
    if (bucket.tokens >= cost) {
      bucket.tokens -= cost;
      return 0;
    }
    return Math.ceil((cost - bucket.tokens) / this.#perMs);
  }

  /** Drops every bucket that would be full by now: it carries no information. */
  sweep(): void {
    const now = this.#clock.now();
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + (now - bucket.updatedAt) * this.#perMs >= this.#capacity) {
        this.#buckets.delete(key);
      }
    }
  }

  /** Forgets every key. */
  clear(): void {
    this.#buckets.clear();
  }
}
