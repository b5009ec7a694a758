/**
 * Tickets kept in this isolate only (`STORE=memory`, `STORE=redis`): a ticket
 * must be redeemed on the isolate that issued it.
 *
 * @module
 */
import type { Principal } from "../../core/auth.ts";
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import {
  DEFAULT_MAX_TICKETS,
  DEFAULT_TICKET_STORE_MAX_BYTES,
  type IssuedTicket,
  newTicket,
  type Redemption,
  ticketCost,
  ticketExpiry,
  type TicketLimits,
  type TicketStore,
} from "./types.ts";
import type { StoreHealth } from "../types.ts";
import { judge } from "./_judge.ts";

interface Entry {
  principal: Principal;
  origin: string | null;
  expiresAt: number;
  /** Its {@linkcode ticketCost}, given back when it leaves. */
  cost: number;
}

/** Options for {@linkcode MemoryTicketStore}. */
export interface MemoryTicketStoreOptions extends TicketLimits {
  /** How long a ticket stays valid, in ms. */
  ttlMs: number;
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
  readonly #maxTickets: number;
  readonly #maxBytes: number;
  readonly #clock: Clock;
  #bytes = 0;

  /** @param options ttl, bounds and clock */
  constructor(options: MemoryTicketStoreOptions) {
    const {
      ttlMs,
      maxTickets = DEFAULT_MAX_TICKETS,
      maxBytes = DEFAULT_TICKET_STORE_MAX_BYTES,
      clock = systemClock,
    } = options;
    this.#ttlMs = ttlMs;
    this.#maxTickets = maxTickets;
    this.#maxBytes = maxBytes;
    this.#clock = clock;
  }

  get size(): number {
    return this.#tickets.size;
  }

  /** What the tickets held are charged, in bytes ({@linkcode ticketCost}). */
  get bytes(): number {
    return this.#bytes;
  }

  issue(principal: Principal, origin: string | null): Promise<IssuedTicket | null> {
    const expiresAt = ticketExpiry(principal, this.#clock.now(), this.#ttlMs);
    const cost = ticketCost({ principal, origin, expiresAt });
    if (!this.#fits(cost)) this.sweep();
    if (!this.#fits(cost)) return Promise.resolve(null);
    const ticket = newTicket();
    this.#tickets.set(ticket, { principal, origin, expiresAt, cost });
    this.#bytes += cost;
    return Promise.resolve({ ticket, expiresAt });
  }

  redeem(ticket: string, origin: string | null): Promise<Redemption> {
    const entry = this.#tickets.get(ticket);
    if (entry === undefined) return Promise.resolve({ ok: false, reason: "ticket_invalid" });
    this.#drop(ticket, entry);
    return Promise.resolve(judge(entry, origin, this.#clock.now()));
  }

  /** Drops the expired tickets held here: this backend does not expire them by itself. */
  sweep(): void {
    const now = this.#clock.now();
    for (const [ticket, entry] of this.#tickets) {
      if (entry.expiresAt <= now) this.#drop(ticket, entry);
    }
  }

  health(): StoreHealth {
    return { status: "ok", transport: "memory" };
  }

  close(): Promise<void> {
    this.#tickets.clear();
    this.#bytes = 0;
    return Promise.resolve();
  }

  #fits(cost: number): boolean {
    return this.#tickets.size < this.#maxTickets && this.#bytes + cost <= this.#maxBytes;
  }

  #drop(ticket: string, entry: Entry): void {
    this.#tickets.delete(ticket);
    this.#bytes -= entry.cost;
  }
}
