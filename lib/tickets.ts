/**
 * One-time connection tickets: a short-lived random string exchanged for a
 * verified principal, so browsers need not put a JWT in a URL (where proxies
 * and access logs keep it). Single use, bound to the user and optionally to
 * the Origin that asked for it.
 *
 * @module
 */
import type { Principal } from "./auth.ts";
import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";

interface Entry {
  principal: Principal;
  origin: string | null;
  expiresAt: number;
}

/** Options for {@linkcode TicketStore}. */
export interface TicketStoreOptions {
  /** How long a ticket stays valid, in ms. */
  ttlMs: number;
  /** Most unredeemed tickets held; issuing past it fails. @default 100_000 */
  maxTickets?: number;
  /** @default systemClock */
  clock?: Clock;
}

/** Outcome of {@linkcode TicketStore.redeem}. */
export type Redemption =
  | { ok: true; principal: Principal }
  | { ok: false; reason: "ticket_invalid" | "ticket_origin_mismatch" };

/**
 * Issues and redeems tickets. Per isolate: a ticket must be redeemed on the
 * instance that issued it (with `deno serve --parallel` or several nodes, use
 * sticky routing for `/ticket` and `/ws`, or tokens).
 */
export class TicketStore {
  readonly #tickets = new Map<string, Entry>();
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #clock: Clock;

  /** @param options ttl, bound and clock */
  constructor(options: TicketStoreOptions) {
    const { ttlMs, maxTickets = 100_000, clock = systemClock } = options;
    this.#ttlMs = ttlMs;
    this.#max = maxTickets;
    this.#clock = clock;
  }

  /** Unredeemed tickets held. */
  get size(): number {
    return this.#tickets.size;
  }

  /** Issues a ticket, or returns null when the store is full even after dropping expired ones. */
  issue(principal: Principal, origin: string | null): { ticket: string; expiresAt: number } | null {
    if (this.#tickets.size >= this.#max) this.sweep();
    if (this.#tickets.size >= this.#max) return null;
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    const ticket = btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
      .replace(/=+$/, "");
    // A ticket never outlives the token it was issued for.
    const tokenEnd = principal.expiresAt === null ? Infinity : principal.expiresAt * 1000;
    const expiresAt = Math.min(this.#clock.now() + this.#ttlMs, tokenEnd);
    this.#tickets.set(ticket, { principal, origin, expiresAt });
    return { ticket, expiresAt };
  }

  /** Redeems a ticket once. A second use, an expired ticket or another Origin fails. */
  redeem(ticket: string, origin: string | null): Redemption {
    const entry = this.#tickets.get(ticket);
    if (entry === undefined) return { ok: false, reason: "ticket_invalid" };
    this.#tickets.delete(ticket);
    if (entry.expiresAt <= this.#clock.now()) return { ok: false, reason: "ticket_invalid" };
    if (entry.origin !== null && entry.origin !== origin) {
      return { ok: false, reason: "ticket_origin_mismatch" };
    }
    return { ok: true, principal: entry.principal };
  }

  /** Drops expired tickets. */
  sweep(): void {
    const now = this.#clock.now();
    for (const [ticket, entry] of this.#tickets) {
      if (entry.expiresAt <= now) this.#tickets.delete(ticket);
    }
  }
}
