/**
 * What every Deno KV backend shares: one database handle per isolate and
 * path (leased, closed with its last user), the retry loop that turns KV's
 * transient failures into short waits, and key helpers.
 *
 * Transient failures are an atomic check that lost (another writer got
 * there first) and `TypeError: database is locked`, which a local SQLite
 * file throws under contention between the isolates of one
 * `deno serve --parallel` process. Both are retried with a short jittered
 * back-off; only a database that keeps failing for `unavailableAfterMs`
 * makes an operation reject with {@linkcode StoreUnavailableError}.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { sha256Hex } from "./_hash.ts";
import { type StoreHealth, StoreUnavailableError } from "./types.ts";

/** Where a KV database lives: a file path, `":memory:"`, or `undefined` for Deno Deploy's managed one. */
export type KvPath = string | undefined;

/** A shared handle on one KV database; `release` closes it once every user released it. */
export interface KvLease {
  readonly kv: Deno.Kv;
  /** Gives the handle back; idempotent per lease. */
  release(): void;
}

interface Shared {
  kv: Deno.Kv;
  users: number;
}

const shared = new Map<string, Promise<Shared>>();

/**
 * Opens (or reuses) this isolate's handle on the database at `path`. A file
 * path's directory is created when missing. Every store of one server leases
 * the same handle, so that `:memory:` is one database for all of them; a
 * test that wants a database of its own calls `Deno.openKv` itself.
 *
 * @example
 * ```ts ignore
 * const lease = await leaseKv("./data/realtime.kv");
 * await lease.kv.set(["k"], 1);
 * lease.release();
 * ```
 */
export async function leaseKv(path: KvPath): Promise<KvLease> {
  const id = path ?? "\0deploy";
  let entry = shared.get(id);
  if (entry === undefined) {
    entry = openKv(path).then((kv) => ({ kv, users: 0 }));
    shared.set(id, entry);
    entry.catch(() => shared.delete(id));
  }
  const handle = await entry;
  handle.users++;
  let released = false;
  return {
    kv: handle.kv,
    release() {
      if (released) return;
      released = true;
      if (--handle.users > 0) return;
      if (shared.get(id) === entry) shared.delete(id);
      handle.kv.close();
    },
  };
}

async function openKv(path: KvPath): Promise<Deno.Kv> {
  if (path !== undefined && path !== ":memory:") {
    const slash = path.lastIndexOf("/");
    if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
  }
  return await Deno.openKv(path);
}

/** An attempt that lost an atomic check: try again with fresh reads. */
export const CONFLICT: unique symbol = Symbol("kv conflict");

/** Options for {@linkcode withRetry}. */
export interface RetryOptions {
  /** What is being done, for the error message. */
  what: string;
  /** Give up after this long without success, in ms. */
  unavailableAfterMs: number;
  /** Told of each failure (not of conflicts). */
  onFailure?: (err: unknown) => void;
  /** Stops retrying (the store closed). */
  stopped?: () => boolean;
}

/**
 * Runs `attempt` until it returns something other than {@linkcode CONFLICT}.
 * Conflicts and transient errors wait a jittered back-off (up to ~50 ms)
 * and retry; a permanent error (a value too large, a bad key) is rethrown at
 * once; past `unavailableAfterMs` the operation rejects with
 * {@linkcode StoreUnavailableError} carrying the last error.
 *
 * Waits use real time, not an injected clock: they pace a real database.
 */
export async function withRetry<T>(
  attempt: () => Promise<T | typeof CONFLICT>,
  options: RetryOptions,
): Promise<T> {
  const { what, unavailableAfterMs, onFailure = () => {}, stopped = () => false } = options;
  const deadline = performance.now() + unavailableAfterMs;
  let lastError: unknown;
  for (let tries = 0;; tries++) {
    if (stopped()) throw new StoreUnavailableError(`cannot ${what}: the KV store is closed`);
    try {
      const result = await attempt();
      if (result !== CONFLICT) return result;
    } catch (err) {
      if (isPermanent(err)) throw err;
      lastError = err;
      onFailure(err);
    }
    if (performance.now() >= deadline) {
      const detail = lastError === undefined ? "too much contention" : errorMessage(lastError);
      throw new StoreUnavailableError(`cannot ${what}: ${detail}`, 1000, { cause: lastError });
    }
    await sleep(Math.random() * Math.min(50, 2 ** Math.min(tries, 6)));
  }
}

/** Options for {@linkcode KvHandle}: the part of every KV store's options it takes. */
export interface KvHandleOptions {
  /** The database, or its coming handle; not closed by the handle (see `onClose`). */
  kv: Deno.Kv | Promise<Deno.Kv>;
  /** How long operations retry a failing database, in ms. @default 3000 */
  unavailableAfterMs?: number;
  /** Called once by `close`. */
  onClose?: () => void;
}

/** How a {@linkcode KvHandle} names its store and reports its failures. */
export interface KvHandleSettings {
  /** The store, for the error an operation on a closed store rejects with (`"ticket store"`). */
  name: string;
  /** Told of each operation that gave up, unless the store was closed by then. */
  onError?: (error: StoreUnavailableError) => void;
  /** Told of each failure a retry may still cure (not of conflicts). */
  onRetry?: (err: unknown) => void;
  /**
   * Whether a `RangeError` (a caller's mistake) also becomes a
   * {@linkcode StoreUnavailableError} and a failure; otherwise it is rethrown
   * as is and leaves the health alone.
   *
   * @default {false}
   */
  rangeErrorUnavailable?: boolean;
}

/**
 * What a KV store of any concern (history, presence, tickets, revocations) does
 * around its operations: waits for the database, retries with
 * {@linkcode withRetry}, turns every other failure into
 * {@linkcode StoreUnavailableError}, remembers the last one for `health`,
 * and closes once. The store keeps its keys and values; this keeps the
 * plumbing in one place so the stores report the same way.
 *
 * @example
 * ```ts ignore
 * const handle = new KvHandle({ kv: Deno.openKv(":memory:") }, { name: "ticket store" });
 * await handle.run("issue a ticket", (kv) => kv.set(["k"], 1));
 * handle.health(); // { status: "ok", transport: "kv" }
 * await handle.close();
 * ```
 */
export class KvHandle {
  readonly #kv: Promise<Deno.Kv>;
  readonly #unavailableAfterMs: number;
  readonly #onClose: () => void;
  readonly #name: string;
  readonly #onError: (error: StoreUnavailableError) => void;
  readonly #rangeErrorUnavailable: boolean;
  readonly #onRetry: (err: unknown) => void;
  readonly #running = new Set<Promise<unknown>>();
  #failure: string | undefined;
  #closed = false;

  /**
   * @param options the store's own options (only `kv`, `unavailableAfterMs` and `onClose` are read)
   * @param settings the store's name and failure hooks
   */
  constructor(options: KvHandleOptions, settings: KvHandleSettings) {
    const { kv, unavailableAfterMs = 3000, onClose = () => {} } = options;
    const { name, onError = () => {}, onRetry = () => {}, rangeErrorUnavailable = false } =
      settings;
    this.#kv = Promise.resolve(kv);
    // A database that fails to open rejects the operations, not the process.
    this.#kv.catch(() => {});
    this.#unavailableAfterMs = unavailableAfterMs;
    this.#onClose = onClose;
    this.#name = name;
    this.#onError = onError;
    this.#rangeErrorUnavailable = rangeErrorUnavailable;
    this.#onRetry = onRetry;
  }

  /** The database, once open (rejects when it failed to open). */
  get kv(): Promise<Deno.Kv> {
    return this.#kv;
  }

  /** Whether `close` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Runs `operation` on the database, retried through {@linkcode withRetry}
   * (also when it answers {@linkcode CONFLICT}); `what` ("issue a ticket")
   * names it in errors. Success clears the last
   * failure; giving up records it and rejects with
   * {@linkcode StoreUnavailableError}.
   */
  run<T>(
    what: string,
    operation: (kv: Deno.Kv) => Promise<T | typeof CONFLICT>,
  ): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new StoreUnavailableError(`${this.#name} is closed`));
    }
    const running = this.#run(what, operation);
    const settled = running.catch(() => {});
    this.#running.add(settled);
    void settled.then(() => this.#running.delete(settled));
    return running;
  }

  async #run<T>(
    what: string,
    operation: (kv: Deno.Kv) => Promise<T | typeof CONFLICT>,
  ): Promise<T> {
    try {
      const kv = await this.#kv;
      const result = await withRetry(() => operation(kv), {
        what,
        unavailableAfterMs: this.#unavailableAfterMs,
        onFailure: this.#onRetry,
        stopped: () => this.#closed,
      });
      this.#failure = undefined;
      return result;
    } catch (err) {
      if (err instanceof RangeError && !this.#rangeErrorUnavailable) throw err;
      // Anything else (opening the database failed, a permanent KV error) is the store's failure.
      const error = err instanceof StoreUnavailableError ? err : new StoreUnavailableError(
        `cannot ${what}: ${errorMessage(err)}`,
        1000,
        { cause: err },
      );
      if (!this.#closed) {
        this.#failure = error.message;
        this.#onError(error);
      }
      throw error;
    }
  }

  /** `closed`, ok, or degraded with the last failure's message until an operation succeeds. */
  health(): StoreHealth {
    if (this.#closed) return { status: "degraded", transport: "kv", detail: "closed" };
    return this.#failure === undefined
      ? { status: "ok", transport: "kv" }
      : { status: "degraded", transport: "kv", detail: this.#failure };
  }

  /**
   * Stops every operation (running ones stop retrying), waits for those
   * under way to settle, and calls `onClose`, once: the database is never
   * released under an operation.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#running);
    this.#onClose();
  }
}

/** Errors that no retry will cure: the request itself is wrong for KV. */
function isPermanent(err: unknown): boolean {
  if (err instanceof RangeError) return true;
  return err instanceof TypeError &&
    /too large|too many|invalid key|key size|unsupported/i.test(err.message) &&
    !/locked|busy/i.test(err.message);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Longest caller-built string used as one key part as is; longer ones are hashed (KV keys are ≤ 2 KiB). */
const MAX_RAW_KEY_PART = 256;

/** A key part for a caller-built string: itself when short, its SHA-256 otherwise. */
export async function keyPart(value: string): Promise<string> {
  if (value.length <= MAX_RAW_KEY_PART) return value;
  return `#${await sha256Hex(value)}`;
}

/** `kv.getMany` takes at most this many keys. */
export const MAX_GET_MANY = 10;

/** `kv.getMany` for any number of keys, in chunks of {@linkcode MAX_GET_MANY}. */
export async function getAll(
  kv: Deno.Kv,
  keys: Deno.KvKey[],
): Promise<Deno.KvEntryMaybe<unknown>[]> {
  const out: Deno.KvEntryMaybe<unknown>[] = [];
  for (let i = 0; i < keys.length; i += MAX_GET_MANY) {
    out.push(...await kv.getMany(keys.slice(i, i + MAX_GET_MANY)));
  }
  return out;
}
