/**
 * Shared limits (`LIMITS_STORE`): the per-user message bucket, the per-IP
 * handshake rate and the connection caps, decided for the whole cluster
 * instead of per isolate. One interface; one file per backend
 * (`memory.ts`, `redis.ts`, `kv.ts`), all held to one contract: the cases in
 * `tests/_limits_contract.ts`, run on each by
 * `tests/limits_store_contract_test.ts`. Each decision is one atomic step
 * (a Lua script, a KV atomic commit); the node keeps a local lease of tokens
 * in front (lib/core/shared_rate_limiter.ts) so most messages cost none.
 *
 * Contract (every backend):
 * - `take(key, want, rule)` takes up to `want` tokens from `key`'s token
 *   bucket (full at first, refilled at `rule.refillPerSec` up to
 *   `rule.capacity`) and answers how many it got; when fewer than `want`,
 *   also how long until the next token.
 * - `acquire(key, node, limit)` counts one more connection of `node` under
 *   `key` exactly when every live node's count of `key` adds up to less than
 *   `limit`; `release(key, node)` counts one fewer (never below zero).
 * - A node's count lives `ttlMs` after its last write: `refresh(node,
 *   counts)` writes the node's own counts again (absolute, so drift heals),
 *   and a node that stops refreshing (it crashed) stops counting.
 * - `count(key)` answers the live total of `key`.
 * - Faults reject with `StoreUnavailableError`.
 *
 * @module
 */
import type { Backend } from "../types.ts";

/** A token bucket's shape. */
export interface BucketRule {
  /** Tokens in a full bucket. */
  readonly capacity: number;
  /** Tokens added per second. */
  readonly refillPerSec: number;
}

/** What {@linkcode LimitsStore.take} got. */
export interface Lease {
  /** Tokens taken (0 up to what was asked). */
  readonly granted: number;
  /** When fewer than asked: ms until the next token (else 0). */
  readonly waitMs: number;
}

/** Where shared limits live; see the module doc for the contract. */
export interface LimitsStore extends Backend {
  /** How long a node's connection count lives without a write. */
  readonly ttlMs: number;
  /**
   * Takes up to `want` tokens from `key`'s bucket.
   *
   * @throws {StoreUnavailableError}
   */
  take(key: string, want: number, rule: BucketRule): Promise<Lease>;
  /**
   * One more connection of `node` under `key`, if the total stays within `limit`.
   *
   * @throws {StoreUnavailableError}
   */
  acquire(key: string, node: string, limit: number): Promise<boolean>;
  /**
   * One fewer connection of `node` under `key`.
   *
   * @throws {StoreUnavailableError}
   */
  release(key: string, node: string): Promise<void>;
  /**
   * Writes `node`'s counts again (0 deletes), renewing their lifetime.
   *
   * @throws {StoreUnavailableError}
   */
  refresh(node: string, counts: ReadonlyMap<string, number>): Promise<void>;
  /**
   * The live total of `key` over every node.
   *
   * @throws {StoreUnavailableError}
   */
  count(key: string): Promise<number>;
}

/** Refills `tokens` (last written at `at`) to `now` and takes up to `want`: the one bucket rule. */
export function drawBucket(
  state: { tokens: number; at: number } | undefined,
  want: number,
  rule: BucketRule,
  now: number,
): { lease: Lease; tokens: number; at: number } {
  const perMs = rule.refillPerSec / 1000;
  let tokens = state?.tokens ?? rule.capacity;
  let at = state?.at ?? now;
  if (now > at) {
    tokens = Math.min(rule.capacity, tokens + (now - at) * perMs);
    at = now;
  }
  const granted = Math.max(0, Math.min(want, Math.floor(tokens)));
  tokens -= granted;
  const waitMs = granted < want ? Math.max(1, Math.ceil((1 - tokens) / perMs)) : 0;
  return { lease: { granted, waitMs }, tokens, at };
}

/** How long a bucket with `tokens` left takes to fill again (then it carries nothing). */
export function refillMs(tokens: number, rule: BucketRule): number {
  return Math.ceil(((rule.capacity - tokens) * 1000) / rule.refillPerSec) + 1000;
}
