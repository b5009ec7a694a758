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
import { StoreUnavailableError } from "./history/types.ts";

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
      const detail = lastError === undefined
        ? "too much contention"
        : lastError instanceof Error
        ? lastError.message
        : String(lastError);
      throw new StoreUnavailableError(`cannot ${what}: ${detail}`, 1000, { cause: lastError });
    }
    await sleep(Math.random() * Math.min(50, 2 ** Math.min(tries, 6)));
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

/** SHA-256 of a string, as 64 hex digits. */
export async function sha256Hex(value: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
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
