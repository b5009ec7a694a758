/**
 * Revocations in force on this instance: the in-memory set every credential
 * check consults, kept in step with every other instance and with the store.
 *
 * - A change made here (`POST`/`DELETE /api/revoke`) is written to the store
 *   first, then applied here, then carried on the bus to every instance
 *   (a system envelope of kind `revoke` in the reserved room `$system`).
 * - Applying a revocation closes the open sessions it concerns with 4403
 *   `revoked`, whichever instance they are on.
 * - In `sync` mode (the server's choice for a shared store: Redis, KV) the
 *   set is loaded at start and re-read every few seconds, which heals bus
 *   messages lost in an outage; in `mirror` mode (a per-process store) the
 *   store mirrors what this process enforces and lives and dies with it.
 * - The set is bounded (`maxEntries`) and expired entries are swept. A
 *   revocation is never refused: when the set is full, the one that lapses
 *   soonest makes room (and is lifted everywhere).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { z } from "zod";
import type { Principal, TokenVerifier } from "./auth.ts";
import { AuthError } from "./auth.ts";
import type { SystemChannel } from "../bus/types.ts";
import type { Clock, TimerId } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { CloseCode } from "../codes.ts";
import type { RoomManager } from "./rooms.ts";
import {
  type Revocation,
  revocationKey,
  type RevocationKind,
  RevocationMap,
  RevocationSchema,
  type RevocationStore,
  soonestToLapse,
} from "../store/revocations/types.ts";
import { errorMessage } from "../errors.ts";

/** The reserved bus room for system traffic; client room names cannot contain `$`. */
export const SYSTEM_ROOM = "$system";
/** The system envelope kind of revocation changes. */
export const REVOKE_KIND = "revoke";
/** The close reason sent with 4403 to a revoked connection. */
export const REVOKED_REASON = "revoked";

/** A change carried on the bus. */
const RevocationChange = z.discriminatedUnion("op", [
  z.strictObject({ op: z.literal("add"), revocation: RevocationSchema }),
  z.strictObject({
    op: z.literal("remove"),
    kind: RevocationSchema.shape.kind,
    subject: RevocationSchema.shape.subject,
  }),
]);
type RevocationChange = z.infer<typeof RevocationChange>;

/** Something a revocation can close: a session. */
export interface Revocable {
  /** Who the connection is, as of its latest token. */
  readonly principal: Principal;
  /** Closes the connection. */
  close(code: number, reason: string): void;
}

/** Whether revocation `r` concerns a connection or token of `principal`. */
export function concerns(r: Revocation, principal: Principal): boolean {
  if (r.kind === "jti") return principal.jti === r.subject;
  // `iat` has one-second resolution: a token issued in the same second as the
  // revocation may predate it, so it is refused too. No `iat` counts as old.
  return principal.userId === r.subject &&
    (principal.iat === undefined || principal.iat * 1000 <= r.revokedAt);
}

/** Options for {@linkcode Revocations}. */
export interface RevocationsOptions {
  /** Where revocations are kept. */
  store: RevocationStore;
  /**
   * `sync`: the store is every instance's (Redis, KV), loaded at start and
   * re-read every `syncIntervalMs`. `mirror`: the store is this process's
   * own and mirrors what it learns from the bus.
   *
   * @default {"mirror"}
   */
  mode?: RevocationsMode;
  /** @default systemClock */
  clock?: Clock;
  /** Most revocations held; past it the one that lapses soonest makes room. @default 100_000 */
  maxEntries?: number;
  /**
   * How often a shared store is re-read (and expired entries swept), healing
   * bus messages lost in an outage. Per-process stores have no timer: the
   * owner calls {@linkcode Revocations.sweep} with its other housekeeping.
   * @default 5000
   */
  syncIntervalMs?: number;
  /** Faults worth an operator's attention (store unreachable, an entry evicted). @default a LogTape warning */
  onError?: (error: Error) => void;
}

/** How the store relates to other instances; see {@linkcode RevocationsOptions.mode}. */
export type RevocationsMode = "sync" | "mirror";

/** What {@linkcode Revocations.start} wires to. */
export interface RevocationsAttachment {
  /** Carries changes to the other instances. */
  bus: SystemChannel;
  /** Routes the bus's `revoke` system envelopes here. */
  rooms: RoomManager;
  /** The open sessions of this instance (read when a revocation is applied). */
  sessions: Iterable<Revocable>;
}

/** What the caller asked to revoke. */
export interface RevokeRequest {
  kind: RevocationKind;
  subject: string;
  /** When it lapses, in ms since the epoch. */
  until: number;
  /** Who asked. */
  by: string;
  reason?: string;
}

/** Outcome of {@linkcode Revocations.revoke}. */
export interface RevokeResult {
  revocation: Revocation;
  /** Sessions of this instance closed. */
  closed: number;
  /** The revocation dropped to make room, when the set was full. */
  evicted?: Revocation;
}

interface Entry {
  revocation: Revocation;
  /** Value of the change counter when this entry was learned. */
  learned: number;
}

/**
 * The revocations in force on this instance.
 *
 * @example
 * ```ts ignore
 * const revocations = new Revocations({ store: new MemoryRevocationStore() });
 * const verifier = revocations.guard(baseVerifier);
 * await revocations.start({ bus, rooms, sessions });
 * await revocations.revoke({ kind: "user", subject: "alice", until: Date.now() + 3_600_000, by: "server" });
 * ```
 */
export class Revocations {
  readonly #store: RevocationStore;
  /** `mode: "sync"`: the store is every instance's. */
  readonly #syncsStore: boolean;
  readonly #clock: Clock;
  readonly #max: number;
  readonly #syncIntervalMs: number;
  readonly #onError: (error: Error) => void;
  readonly #entries = new RevocationMap<Entry>();
  /** Keys removed since the last sync began, with the counter value of the removal. */
  readonly #removed = new Map<string, number>();
  /** Counts the changes learned, so that a sync can tell those made while it read. */
  #changes = 0;
  #attachment: RevocationsAttachment | undefined;
  #timer: TimerId | undefined;
  #syncing: Promise<void> | undefined;
  #syncFailing = false;
  #closedTotal = 0;
  #closed = false;

  /** @param options store, clock, bound and sync interval */
  constructor(options: RevocationsOptions) {
    const { store, clock = systemClock, maxEntries = 100_000, syncIntervalMs = 5000 } = options;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(
        `Cannot create revocations: maxEntries must be a positive integer, current value is ${maxEntries}`,
      );
    }
    this.#store = store;
    this.#syncsStore = options.mode === "sync";
    this.#clock = clock;
    this.#max = maxEntries;
    this.#syncIntervalMs = syncIntervalMs;
    const log = getLogger(["realtime", "revocations"]);
    this.#onError = options.onError ?? ((err) => log.warn(err.message));
  }

  /** Revocations held (lapsed ones included until the next sweep). */
  get size(): number {
    return this.#entries.size;
  }

  /** Revocations in force (sweeps the lapsed ones first). */
  get active(): number {
    this.sweep();
    return this.#entries.size;
  }

  /** Sessions closed because a revocation concerned them, since start. */
  get closedTotal(): number {
    return this.#closedTotal;
  }

  /** The store behind this set. */
  get store(): RevocationStore {
    return this.#store;
  }

  /**
   * Whether any active revocation concerns `principal`. Synchronous and
   * cheap: called for every credential check.
   */
  revokes(principal: Principal): boolean {
    if (this.#entries.size === 0) return false;
    const now = this.#clock.now();
    const user = this.#entries.get("user", principal.userId)?.revocation;
    if (user !== undefined && user.until > now && concerns(user, principal)) return true;
    if (principal.jti === undefined) return false;
    const token = this.#entries.get("jti", principal.jti)?.revocation;
    return token !== undefined && token.until > now;
  }

  /**
   * Wraps a verifier so that revoked tokens fail with reason `revoked`. The
   * check runs on every call, after any cache inside `inner`, so a cached
   * verification never lets a revoked token through.
   */
  guard(inner: TokenVerifier): TokenVerifier {
    return {
      verify: async (token) => {
        const principal = await inner.verify(token);
        if (this.revokes(principal)) throw new AuthError("revoked", "the token was revoked");
        return principal;
      },
    };
  }

  /**
   * Starts receiving changes from other instances, loads what the store
   * holds and starts the periodic sync and sweep. A store that cannot be
   * reached is reported and retried at every sync; start-up goes on.
   */
  async start(attachment: RevocationsAttachment): Promise<void> {
    this.#attachment = attachment;
    attachment.rooms.onSystem(REVOKE_KIND, (envelope) => this.#receive(envelope.frame));
    await attachment.bus.subscribe(SYSTEM_ROOM);
    if (!this.#syncsStore) return;
    await this.sync();
    this.#timer = this.#clock.setInterval(() => {
      this.sweep();
      void this.sync();
    }, this.#syncIntervalMs);
  }

  /**
   * Revokes: stores it, applies it here (closing the sessions it concerns)
   * and tells every other instance. Returns how many sessions of this
   * instance were closed.
   *
   * @throws {StoreUnavailableError} when the store cannot be reached; nothing was applied
   */
  async revoke(request: RevokeRequest): Promise<RevokeResult> {
    const revocation: Revocation = {
      kind: request.kind,
      subject: request.subject,
      revokedAt: this.#clock.now(),
      until: request.until,
      by: request.by,
    };
    if (request.reason !== undefined) revocation.reason = request.reason;
    const evicted = await this.#store.add(revocation);
    if (evicted !== undefined) this.#evicted(evicted);
    const closed = this.#add(revocation);
    this.#publish({ op: "add", revocation });
    return evicted === undefined ? { revocation, closed } : { revocation, closed, evicted };
  }

  /**
   * Lifts a revocation everywhere. True when one was in force (in the store
   * or here).
   *
   * @throws {StoreUnavailableError} when the store cannot be reached; nothing was lifted
   */
  async lift(kind: RevocationKind, subject: string): Promise<boolean> {
    const stored = await this.#store.remove(kind, subject);
    const held = this.#remove(kind, subject);
    this.#publish({ op: "remove", kind, subject });
    return stored || held;
  }

  /** The active revocations, newest first. */
  list(): Revocation[] {
    const now = this.#clock.now();
    return [...this.#entries.values()]
      .filter((e) => e.revocation.until > now)
      .sort((a, b) => b.revocation.revokedAt - a.revocation.revokedAt || b.learned - a.learned)
      .map((e) => e.revocation);
  }

  /**
   * Re-reads a shared store: adds what this instance missed (closing the
   * sessions concerned) and drops what was lifted elsewhere. Changes learned
   * while the read was under way win over it. One sync at a time.
   */
  sync(): Promise<void> {
    this.#syncing ??= this.#sync().finally(() => this.#syncing = undefined);
    return this.#syncing;
  }

  /** Stops the sync and closes the store; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearInterval(this.#timer);
    await this.#syncing;
    await this.#store.close();
  }

  async #sync(): Promise<void> {
    if (this.#closed) return;
    const started = this.#changes;
    let listed: Revocation[];
    try {
      listed = await this.#store.list();
    } catch (err) {
      if (!this.#syncFailing) {
        this.#syncFailing = true;
        this.#onError(
          new Error(
            `revocations: the store cannot be read (${
              errorMessage(err)
            }); revocations made meanwhile reach this instance by the bus only`,
            { cause: err },
          ),
        );
      }
      return;
    }
    if (this.#closed) return;
    if (this.#syncFailing) {
      this.#syncFailing = false;
      this.#onError(new Error("revocations: the store is reachable again"));
    }
    const listedSet = new RevocationMap<Revocation>();
    for (const r of listed) listedSet.set(r.kind, r.subject, r);
    for (const { revocation: r, learned } of this.#entries.values()) {
      if (!listedSet.has(r.kind, r.subject) && learned <= started) this.#remove(r.kind, r.subject);
    }
    for (const revocation of listedSet.values()) {
      const key = revocationKey(revocation.kind, revocation.subject);
      if ((this.#removed.get(key) ?? -1) > started) continue;
      const held = this.#entries.get(revocation.kind, revocation.subject);
      if (held !== undefined && (held.learned > started || same(held.revocation, revocation))) {
        continue;
      }
      this.#add(revocation);
    }
    for (const [key, at] of this.#removed) if (at <= started) this.#removed.delete(key);
  }

  #receive(frame: string): void {
    let change: RevocationChange;
    try {
      const parsed = RevocationChange.safeParse(JSON.parse(frame));
      if (!parsed.success) return;
      change = parsed.data;
    } catch {
      return;
    }
    // A per-process store mirrors what this process enforces.
    const mirror = this.#syncsStore ? undefined : this.#store;
    if (change.op === "add") {
      // Two instances revoking the same subject at once: the later one covers
      // more tokens, whichever order their messages arrive in.
      const held = this.#entries.get(change.revocation.kind, change.revocation.subject);
      if (held !== undefined && held.revocation.revokedAt > change.revocation.revokedAt) return;
      this.#add(change.revocation);
      mirror?.add(change.revocation).catch(() => {});
    } else {
      this.#remove(change.kind, change.subject);
      mirror?.remove(change.kind, change.subject).catch(() => {});
    }
  }

  /** Holds a revocation and closes the local sessions it concerns; returns how many. */
  #add(revocation: Revocation): number {
    const { kind, subject } = revocation;
    if (!this.#entries.has(kind, subject) && this.#entries.size >= this.#max) {
      this.sweep();
      if (this.#entries.size >= this.#max) this.#evictSoonest();
    }
    this.#entries.set(kind, subject, { revocation, learned: ++this.#changes });
    if (this.#removed.size > 0) this.#removed.delete(revocationKey(kind, subject));
    if (revocation.until <= this.#clock.now()) return 0;
    let closed = 0;
    for (const session of this.#attachment?.sessions ?? []) {
      if (!concerns(revocation, session.principal)) continue;
      session.close(CloseCode.Forbidden, REVOKED_REASON);
      closed++;
    }
    this.#closedTotal += closed;
    return closed;
  }

  #remove(kind: RevocationKind, subject: string): boolean {
    const held = this.#entries.delete(kind, subject);
    if (this.#syncsStore) this.#removed.set(revocationKey(kind, subject), ++this.#changes);
    return held;
  }

  /** The store dropped `r` to make room: lifted here and everywhere, and reported. */
  #evicted(r: Revocation): void {
    this.#remove(r.kind, r.subject);
    this.#publish({ op: "remove", kind: r.kind, subject: r.subject });
    this.#onError(
      new Error(
        `revocations: the store is full (${this.#max}); the ${r.kind} revocation lapsing soonest was dropped`,
      ),
    );
  }

  #publish(change: RevocationChange): void {
    this.#attachment?.bus.publish(SYSTEM_ROOM, JSON.stringify(change), { kind: REVOKE_KIND });
  }

  /** Drops lapsed revocations (they are already ignored by every check). */
  sweep(): void {
    const now = this.#clock.now();
    for (const { revocation: r } of this.#entries.values()) {
      if (r.until <= now) this.#entries.delete(r.kind, r.subject);
    }
  }

  /**
   * Only reached when other instances hold more than this one's bound
   * (a smaller `maxEntries` here): the entry closest to lapsing goes.
   */
  #evictSoonest(): void {
    const soonest = soonestToLapse([...this.#entries.values()].map((e) => e.revocation));
    if (soonest === undefined) return;
    this.#entries.delete(soonest.kind, soonest.subject);
    this.#onError(
      new Error(`revocations: over ${this.#max} held; the one closest to lapsing was dropped`),
    );
  }
}

function same(a: Revocation, b: Revocation): boolean {
  return a.revokedAt === b.revokedAt && a.until === b.until && a.by === b.by &&
    a.reason === b.reason;
}
