/**
 * What every store shares, whatever it keeps (history, presence, tickets,
 * revocations) and wherever it keeps it (memory, Redis, Deno KV): the
 * {@linkcode Backend} shape, its {@linkcode StoreHealth}, the one error a
 * backend fault becomes ({@linkcode StoreUnavailableError}), the
 * {@linkcode StoreContext} every factory takes, and the one rule that turns
 * that error into an HTTP `Retry-After`.
 *
 * Each concern has its own `types.ts` (its interface and contract), one file
 * per backend, one factory `(slice, context) => Promise<Store>` in its
 * `from_config.ts`, where `slice` holds only the settings that concern needs,
 * and one case list, `tests/_<concern>_contract.ts`, that every backend runs
 * unchanged (a new backend is done when it passes).
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { RedisTarget } from "../config.ts";

/** Where a store keeps its data: this isolate, Redis, or Deno KV. */
export type BackendKind = "memory" | "redis" | "kv";

/** Health of a store, as reported by `/healthz`. */
export interface StoreHealth {
  /** `degraded` while the backend is unreachable: what depends on it answers `unavailable`. */
  status: "ok" | "degraded";
  /** Backend name: `memory`, `redis`, `kv` (`none` where no store is configured). */
  transport: string;
  /** Last failure, while degraded. */
  detail?: string;
}

/**
 * The shape every store of every concern has.
 *
 * @typeParam K the backends the concern has (every concern has all three today)
 */
export interface Backend<K extends BackendKind = BackendKind> {
  /** Which backend this is. */
  readonly kind: K;
  /** Current health. */
  health(): StoreHealth;
  /** Releases connections and timers; idempotent. */
  close(): Promise<void>;
}

/**
 * What every store factory is given besides its slice of the configuration.
 * Factories have one signature per concern: `(slice, context) => Promise<Store>`.
 */
export interface StoreContext {
  /** Time for expiry. @default systemClock */
  clock?: Clock;
  /** Told when the backend becomes unreachable (the caller logs or audits it). */
  onError?: (error: Error) => void;
}

/**
 * The slice of the configuration every shared-state factory reads: which
 * backend, and how to reach Redis and KV (the shape of the `store` section
 * of the configuration). Each concern's slice extends it with its own
 * settings.
 */
export interface StoreSlice {
  /** The backend to build. */
  kind: BackendKind;
  /** `REDIS_URL` and `BUS_CHANNEL` (the key prefix); required when `kind` is `redis`. */
  redis: { url: RedisTarget; prefix: string } | undefined;
  /** `KV_PATH` (a file, `:memory:`, or undefined on Deno Deploy) and the first part of every key. */
  kv: { path: string | undefined; prefix: string };
}

/** The store could not be reached; the request had no effect. */
export class StoreUnavailableError extends Error {
  /** When the caller may try again, in milliseconds. */
  readonly retryAfterMs: number;
  /**
   * @param message what failed (never secrets)
   * @param retryAfterMs when to try again
   * @param options the underlying error as `cause`
   */
  constructor(message: string, retryAfterMs = 1000, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreUnavailableError";
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * The `Retry-After` header of a `503` answered because a store is
 * unavailable: the error's hint in whole seconds, rounded up, at least 1.
 * Every route and the handshake use it, so one rule holds everywhere.
 *
 * @example
 * ```ts
 * import { retryAfter, StoreUnavailableError } from "./types.ts";
 * const headers = retryAfter(new StoreUnavailableError("down", 1500));
 * console.assert(headers["retry-after"] === "2");
 * ```
 */
export function retryAfter(err: StoreUnavailableError): { "retry-after": string } {
  return { "retry-after": String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))) };
}
