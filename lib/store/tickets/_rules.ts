/**
 * What every ticket backend decides the same way: a new ticket's lifetime
 * and what it is charged, whether the limits leave room for it, how long a
 * shared store counts it, the verdict on a ticket taken out of a store, and
 * the hash a shared store keys it by (so the database never holds a usable
 * ticket). Each backend holds one {@linkcode TicketRules} and keeps only
 * where its tickets live and how it takes one out exactly once.
 *
 * @module
 */
import type { Principal } from "../../core/auth.ts";
import { type Clock, systemClock } from "../../clock.ts";
import { sha256Hex } from "../_hash.ts";
import {
  DEFAULT_MAX_TICKETS,
  DEFAULT_TICKET_STORE_MAX_BYTES,
  type IssuedTicket,
  newTicket,
  type Redemption,
  type StoredTicket,
  ticketCost,
  ticketExpiry,
  type TicketLimits,
  usageWindows,
} from "./types.ts";

/** Options for {@linkcode TicketRules}: every ticket store's lifetime, bounds and clock. */
export interface TicketRulesOptions extends TicketLimits {
  /** How long a ticket stays valid, in ms. */
  ttlMs: number;
  /** @default systemClock */
  clock?: Clock;
}

/** A ticket about to be issued, with everything a store needs to keep it. */
export interface TicketDraft {
  /** What the caller gets once the store kept it. */
  issued: IssuedTicket;
  /** What the store keeps (the principal copied). */
  stored: StoredTicket;
  /** Its {@linkcode ticketCost}. */
  cost: number;
  /** The time it was drafted, by the rules' clock. */
  now: number;
  /** How long the store keeps it, in whole ms, at least 1. */
  lifetimeMs: number;
}

/**
 * The ticket rules of one store.
 *
 * @example
 * ```ts
 * import { TicketRules } from "./_rules.ts";
 * const rules = new TicketRules({ ttlMs: 30_000 });
 * const principal = { userId: "alice", expiresAt: null, rooms: [], roomsReadonly: [], roles: [] };
 * const draft = rules.draft(principal, null);
 * console.assert(rules.judge(draft.stored, null).ok);
 * ```
 */
export class TicketRules {
  /** How long a ticket stays valid, in ms. */
  readonly ttlMs: number;
  /** Most bytes of outstanding tickets. */
  readonly maxBytes: number;
  /** Most outstanding tickets. */
  readonly maxTickets: number;
  /** The store's time source. */
  readonly clock: Clock;

  /** @param options ttl, bounds and clock */
  constructor(options: TicketRulesOptions) {
    const {
      ttlMs,
      maxBytes = DEFAULT_TICKET_STORE_MAX_BYTES,
      maxTickets = DEFAULT_MAX_TICKETS,
      clock = systemClock,
    } = options;
    this.ttlMs = ttlMs;
    this.maxBytes = maxBytes;
    this.maxTickets = maxTickets;
    this.clock = clock;
  }

  /** A fresh ticket for `principal`, bound to `origin` when not null, valid from now. */
  draft(principal: Principal, origin: string | null): TicketDraft {
    const now = this.clock.now();
    const expiresAt = ticketExpiry(principal, now, this.ttlMs);
    const stored: StoredTicket = { principal: { ...principal }, origin, expiresAt };
    return {
      issued: { ticket: newTicket(), expiresAt },
      stored,
      cost: ticketCost(stored),
      now,
      lifetimeMs: Math.max(1, Math.ceil(expiresAt - now)),
    };
  }

  /** Whether `count` tickets charged `bytes` in all stay within the limits. */
  allows(bytes: number, count: number): boolean {
    return bytes <= this.maxBytes && count <= this.maxTickets;
  }

  /** The usage windows a shared store charges and counts at `now` ({@linkcode usageWindows}). */
  windows(now: number): { current: number; previous: number } {
    return usageWindows(now, this.ttlMs);
  }

  /** How long a shared store keeps a window's usage: until the window after it ends. */
  get usageTtlMs(): number {
    return 2 * this.ttlMs;
  }

  /** The verdict on a ticket taken out of a store: expired, bound to another Origin, or good. */
  judge(entry: StoredTicket, origin: string | null): Redemption {
    if (entry.expiresAt <= this.clock.now()) return { ok: false, reason: "ticket_invalid" };
    if (entry.origin !== null && entry.origin !== origin) {
      return { ok: false, reason: "ticket_origin_mismatch" };
    }
    return { ok: true, principal: entry.principal };
  }
}

/** The key part a shared store keeps a ticket under: its SHA-256, never the ticket. */
export function ticketHash(ticket: string): Promise<string> {
  return sha256Hex(ticket);
}

/**
 * What the shared ticket stores (Redis, KV) have in common besides their
 * database: they are shared, hold no count of their own, and judge by one
 * {@linkcode TicketRules}.
 */
export abstract class SharedTicketStore {
  /** Every isolate sees the same tickets. */
  readonly shared = true;
  /** Not counted here: the database expires each ticket by itself. */
  readonly size = 0;
  /** The lifetime, bounds and verdicts. */
  protected readonly rules: TicketRules;

  /** @param options the ticket lifetime, bounds and clock */
  constructor(options: TicketRulesOptions) {
    this.rules = new TicketRules(options);
  }
}
