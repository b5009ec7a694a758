/**
 * The node's side of shared limits (`LIMITS_STORE`): whether the limits
 * store is answering ({@linkcode SharedLimits}: when it is not, every limit
 * falls back to this isolate's own, `/healthz` says `degraded` with a
 * `limits` entry and `/metrics` `realtime_limits_shared 0`), and the
 * cluster-wide connection caps ({@linkcode SharedCounts}): a claim counted in
 * the store when a connection opens, released when it ends, and this node's
 * counts written again every `ttlMs / 3`, so that a crashed node's counts
 * lapse and any drift (a claim made during an outage) heals.
 *
 * @module
 */
import type { Clock, TimerId } from "../clock.ts";
import { errorMessage } from "../errors.ts";
import type { LimitsStore } from "../store/limits/types.ts";
import type { StoreHealth } from "../store/types.ts";

/** How often a store found down is tried again. */
const PROBE_MS = 1000;

/** Options for {@linkcode SharedLimits}. */
export interface SharedLimitsOptions {
  store: LimitsStore;
  /** This node's id (the bus's `instanceId`). */
  node: string;
  clock: Clock;
  /** Told when the store stops answering (`false`, with the reason) and answers again. */
  onChange?: (shared: boolean, detail: string | undefined) => void;
}

/**
 * The limits store and whether it answers.
 *
 * @example
 * ```ts ignore
 * const shared = new SharedLimits({ store, node: bus.instanceId, clock });
 * store.take(key, 5, rule).then(() => shared.succeeded(), (err) => shared.failed(err));
 * ```
 */
export class SharedLimits {
  readonly store: LimitsStore;
  readonly node: string;
  readonly clock: Clock;
  readonly #onChange: (shared: boolean, detail: string | undefined) => void;
  #detail: string | undefined;
  #probeAt = 0;
  /** Store calls made (for the measurements: round trips per decision). */
  calls = 0;

  /** @param options the store, this node and the clock */
  constructor(options: SharedLimitsOptions) {
    this.store = options.store;
    this.node = options.node;
    this.clock = options.clock;
    this.#onChange = options.onChange ?? (() => {});
  }

  /** Whether limits are shared now (else each isolate's own apply). */
  get up(): boolean {
    return this.#detail === undefined;
  }

  /** A store call succeeded: limits are shared (again). */
  succeeded(): void {
    if (this.#detail === undefined) return;
    this.#detail = undefined;
    this.#onChange(true, undefined);
  }

  /** A store call failed: limits fall back to this isolate's until a probe succeeds. */
  failed(err: unknown): void {
    this.#probeAt = this.clock.now() + PROBE_MS;
    if (this.#detail !== undefined) return;
    this.#detail = errorMessage(err);
    this.#onChange(false, this.#detail);
  }

  /** While down: true at most once per second, when a caller should try the store again. */
  probe(): boolean {
    if (this.up || this.clock.now() < this.#probeAt) return false;
    this.#probeAt = this.clock.now() + PROBE_MS;
    return true;
  }

  /** `/healthz`'s `limits` entry. */
  health(): StoreHealth {
    const transport = this.store.kind;
    return this.#detail === undefined
      ? { status: "ok", transport }
      : { status: "degraded", transport, detail: `per-isolate limits: ${this.#detail}` };
  }
}

/** A connection counted under a key; `release` once it ends (idempotent). */
export interface Claim {
  release(): void;
}

/**
 * Cluster-wide connection caps. A claim is counted in the store (one atomic
 * step) before the connection opens; while the store is down it is counted
 * here only, and written with the rest at the next refresh.
 *
 * @example
 * ```ts ignore
 * const caps = new SharedCounts(shared);
 * const claim = await caps.claim(`u:${userId}`, 20); // undefined: over the cap
 * caps.hold(session, claim); // released by caps.ended(session)
 * ```
 */
export class SharedCounts {
  readonly #shared: SharedLimits;
  /** This node's connections per key. */
  readonly #held = new Map<string, number>();
  /** Keys released to zero since the last refresh (written as 0 then). */
  readonly #emptied = new Set<string>();
  readonly #bySession = new Map<object, Claim[]>();
  readonly #timer: TimerId;
  readonly #refreshMs: number;
  #refreshedAt: number;
  #refreshing = false;

  /** @param shared the store and its state; refreshes start at once */
  constructor(shared: SharedLimits) {
    this.#shared = shared;
    this.#refreshMs = Math.max(1, Math.floor(shared.store.ttlMs / 3));
    this.#refreshedAt = shared.clock.now();
    this.#timer = shared.clock.setInterval(
      () => this.#tick(),
      Math.min(PROBE_MS, this.#refreshMs),
    );
  }

  /** Counts one connection under `key` unless `limit` is reached cluster-wide (then undefined). */
  async claim(key: string, limit: number): Promise<Claim | undefined> {
    const shared = this.#shared;
    if (shared.up) {
      try {
        shared.calls++;
        if (!await shared.store.acquire(key, shared.node, limit)) return undefined;
        shared.succeeded();
      } catch (err) {
        shared.failed(err);
      }
    }
    this.#held.set(key, (this.#held.get(key) ?? 0) + 1);
    this.#emptied.delete(key);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#release(key);
      },
    };
  }

  /** Keeps `claim` until {@linkcode ended} is called for `session`. */
  hold(session: object, claim: Claim): void {
    const claims = this.#bySession.get(session) ?? [];
    claims.push(claim);
    this.#bySession.set(session, claims);
  }

  /** Releases what `session` held (called when any session ends). */
  ended(session: object): void {
    const claims = this.#bySession.get(session);
    if (claims === undefined) return;
    this.#bySession.delete(session);
    for (const claim of claims) claim.release();
  }

  /** Stops refreshing and gives this node's counts back (best effort). */
  async close(): Promise<void> {
    this.#shared.clock.clearInterval(this.#timer);
    if (!this.#shared.up || this.#held.size === 0) return;
    const zeros = new Map([...this.#held.keys()].map((key) => [key, 0]));
    this.#held.clear();
    await this.#shared.store.refresh(this.#shared.node, zeros).catch(() => {});
  }

  #release(key: string): void {
    const left = (this.#held.get(key) ?? 1) - 1;
    if (left > 0) this.#held.set(key, left);
    else {
      this.#held.delete(key);
      this.#emptied.add(key);
    }
    const shared = this.#shared;
    if (!shared.up) return;
    shared.calls++;
    shared.store.release(key, shared.node).then(
      () => shared.succeeded(),
      (err) => shared.failed(err),
    );
  }

  /** Writes this node's counts every `ttlMs / 3`, or (while the store is down) once a second. */
  #tick(): void {
    const shared = this.#shared;
    const now = shared.clock.now();
    const due = shared.up ? now - this.#refreshedAt >= this.#refreshMs : shared.probe();
    if (!due || this.#refreshing) return;
    this.#refreshing = true;
    this.#refreshedAt = now;
    const counts = new Map(this.#held);
    for (const key of this.#emptied) if (!counts.has(key)) counts.set(key, 0);
    this.#emptied.clear();
    shared.calls++;
    // With nothing to write, a read tells whether the store answers.
    const call = counts.size > 0
      ? shared.store.refresh(shared.node, counts)
      : shared.store.count("~probe");
    call.then(
      () => shared.succeeded(),
      (err) => shared.failed(err),
    ).finally(() => this.#refreshing = false);
  }
}
