/**
 * Tickets kept in this isolate only (`STORE=memory`, `STORE=redis`): a ticket
 * must be redeemed on the isolate that issued it.
 *
 * @module
 */
import type { Principal } from "../../auth.ts";
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import {
  type IssuedTicket,
  newTicket,
  type Redemption,
  type StoreHealth,
  ticketExpiry,
  type TicketStore,
} from "./types.ts";

interface Entry {
  principal: Principal;
  origin: string | null;
  expiresAt: number;
}

/** Options for {@linkcode MemoryTicketStore}. */
export interface MemoryTicketStoreOptions {
  /** How long a ticket stays valid, in ms. */
  ttlMs: number;
  /** Most unredeemed tickets held; issuing past it fails. @default 100_000 */
  maxTickets?: number;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * The per-isolate {@linkcode TicketStore}. With `deno serve --parallel` or
 * several nodes, use sticky routing for `/ticket` and `/ws`, or tokens, or
 * `STORE=kv`.
 *
 * @example
 * ```ts ignore
 * const tickets = new MemoryTicketStore({ ttlMs: 30_000 });
 * const issued = await tickets.issue(principal, "https://app.example");
 * ```
 */
export class MemoryTicketStore implements TicketStore {
  readonly kind = "memory";
  readonly shared = false;
  readonly #tickets = new Map<string, Entry>();
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #clock: Clock;

  /** @param options ttl, bound and clock */
  constructor(options: MemoryTicketStoreOptions) {
    const { ttlMs, maxTickets = 100_000, clock = systemClock } = options;
    this.#ttlMs = ttlMs;
    this.#max = maxTickets;
    this.#clock = clock;
  }

  get size(): number {
    return this.#tickets.size;
  }

  issue(principal: Principal, origin: string | null): Promise<IssuedTicket | null> {
    if (this.#tickets.size >= this.#max) this.sweep();
    if (this.#tickets.size >= this.#max) return Promise.resolve(null);
    const ticket = newTicket();
    const expiresAt = ticketExpiry(principal, this.#clock.now(), this.#ttlMs);
    this.#tickets.set(ticket, { principal, origin, expiresAt });
    return Promise.resolve({ ticket, expiresAt });
  }

  redeem(ticket: string, origin: string | null): Promise<Redemption> {
    const entry = this.#tickets.get(ticket);
    if (entry === undefined) return Promise.resolve({ ok: false, reason: "ticket_invalid" });
    this.#tickets.delete(ticket);
    return Promise.resolve(judge(entry, origin, this.#clock.now()));
  }

  sweep(): void {
    const now = this.#clock.now();
    for (const [ticket, entry] of this.#tickets) {
      if (entry.expiresAt <= now) this.#tickets.delete(ticket);
    }
  }

  health(): StoreHealth {
    return { status: "ok", transport: "memory" };
  }

  close(): Promise<void> {
    this.#tickets.clear();
    return Promise.resolve();
  }
}

/** The verdict on a ticket taken out of a store. */
export function judge(
  entry: { principal: Principal; origin: string | null; expiresAt: number },
  origin: string | null,
  now: number,
): Redemption {
  if (entry.expiresAt <= now) return { ok: false, reason: "ticket_invalid" };
  if (entry.origin !== null && entry.origin !== origin) {
    return { ok: false, reason: "ticket_origin_mismatch" };
  }
  return { ok: true, principal: entry.principal };
}
