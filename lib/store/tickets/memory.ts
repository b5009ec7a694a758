/**
 * Tickets kept in this isolate only (`STORE=memory`, `STORE=redis`): a ticket
 * must be redeemed on the isolate that issued it.
 *
 * @module
 */
import type { Principal } from "../../core/auth.ts";
import type { StoreHealth } from "../types.ts";
import { TicketRules, type TicketRulesOptions } from "./_rules.ts";
import type { IssuedTicket, Redemption, StoredTicket, TicketStore } from "./types.ts";

interface Entry extends StoredTicket {
  /** What it was charged, given back when it leaves. */
  cost: number;
}

/** Options for {@linkcode MemoryTicketStore}: the ticket lifetime, bounds and clock. */
export type MemoryTicketStoreOptions = TicketRulesOptions;

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
  readonly #rules: TicketRules;
  #bytes = 0;

  /** @param options ttl, bounds and clock */
  constructor(options: MemoryTicketStoreOptions) {
    this.#rules = new TicketRules(options);
  }

  get size(): number {
    return this.#tickets.size;
  }

  /** What the tickets held are charged, in bytes ({@linkcode ticketCost}). */
  get bytes(): number {
    return this.#bytes;
  }

  issue(principal: Principal, origin: string | null): Promise<IssuedTicket | null> {
    const { issued, stored, cost } = this.#rules.draft(principal, origin);
    if (!this.#fits(cost)) this.sweep();
    if (!this.#fits(cost)) return Promise.resolve(null);
    this.#tickets.set(issued.ticket, { ...stored, cost });
    this.#bytes += cost;
    return Promise.resolve(issued);
  }

  redeem(ticket: string, origin: string | null): Promise<Redemption> {
    const entry = this.#tickets.get(ticket);
    if (entry === undefined) return Promise.resolve({ ok: false, reason: "ticket_invalid" });
    this.#drop(ticket, entry);
    return Promise.resolve(this.#rules.judge(entry, origin));
  }

  /** Drops the expired tickets held here: this backend does not expire them by itself. */
  sweep(): void {
    const now = this.#rules.clock.now();
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
    return this.#rules.allows(this.#bytes + cost, this.#tickets.size + 1);
  }

  #drop(ticket: string, entry: Entry): void {
    this.#tickets.delete(ticket);
    this.#bytes -= entry.cost;
  }
}
