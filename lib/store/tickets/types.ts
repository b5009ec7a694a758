/**
 * One-time connection tickets: a short-lived random string exchanged for a
 * verified principal, so browsers need not put a JWT in a URL (where proxies
 * and access logs keep it). Single use, bound to the user and optionally to
 * the Origin that asked for it. One interface; one file per backend
 * (`memory.ts`, `kv.ts`, `redis.ts`), all held to one contract: the cases in
 * `tests/_tickets_contract.ts`, run on each by `tests/ticket_store_contract_test.ts`.
 *
 * @module
 */
import type { Principal } from "../../core/auth.ts";
import { utf8ByteLength } from "../../protocols/native/protocol.ts";
import type { Backend } from "../types.ts";

/** A ticket just issued. */
export interface IssuedTicket {
  /** 256 random bits, base64url. */
  ticket: string;
  /** When it stops being valid, in ms since the epoch. */
  expiresAt: number;
}

/** Outcome of {@linkcode TicketStore.redeem}. */
export type Redemption =
  | { ok: true; principal: Principal }
  | { ok: false; reason: "ticket_invalid" | "ticket_origin_mismatch" };

/**
 * Where tickets wait to be redeemed.
 *
 * Contract (every backend, checked by the contract suite):
 * - A ticket is valid for the store's TTL and never past its token's `exp`.
 * - `redeem` succeeds at most once per ticket, whoever calls it, even
 *   concurrently from several instances of a shared store; a failed redeem
 *   (wrong Origin, expired) uses the ticket up too.
 * - Faults of the backend reject with `StoreUnavailableError`.
 * - Issuing answers `null` rather than hold more than `maxBytes`
 *   ({@linkcode ticketCost} each) or `maxTickets` outstanding tickets.
 */
export interface TicketStore extends Backend {
  /** True when a ticket issued on one instance can be redeemed on any other. */
  readonly shared: boolean;
  /** Tickets held in this process (0 for a shared store, which holds none here). */
  readonly size: number;
  /**
   * Issues a ticket for `principal`, bound to `origin` when not null; `null`
   * when the store is full (its {@linkcode TicketLimits}).
   *
   * @throws {StoreUnavailableError}
   */
  issue(principal: Principal, origin: string | null): Promise<IssuedTicket | null>;
  /**
   * Redeems a ticket once. A second use, an expired ticket or another Origin fails.
   *
   * @throws {StoreUnavailableError}
   */
  redeem(ticket: string, origin: string | null): Promise<Redemption>;
  /**
   * Drops the expired tickets this process holds. Only a backend that holds
   * tickets in this process has it (memory); Redis and KV expire their keys
   * by themselves and have none. The server calls it with its housekeeping.
   */
  sweep?(): void;
}

/** A fresh ticket: 32 random bytes, base64url (43 characters). */
export function newTicket(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

/** When a ticket issued now expires: after `ttlMs`, never past the token's own `exp`. */
export function ticketExpiry(principal: Principal, now: number, ttlMs: number): number {
  const tokenEnd = principal.expiresAt === null ? Infinity : principal.expiresAt * 1000;
  return Math.min(now + ttlMs, tokenEnd);
}

/** A ticket as shared stores keep it (under a hash of the ticket, never the ticket). */
export interface StoredTicket {
  principal: Principal;
  origin: string | null;
  expiresAt: number;
}

/** Default of `TICKET_STORE_MAX_BYTES`: what all outstanding tickets may take together. */
export const DEFAULT_TICKET_STORE_MAX_BYTES = 32 * 1024 * 1024;

/** Default most outstanding tickets, whatever their size. */
export const DEFAULT_MAX_TICKETS = 100_000;

/**
 * What one ticket is charged against `maxBytes`: its stored JSON plus a
 * fixed allowance for the key, the map entry and object headers. Every
 * backend charges the same, so one limit means the same everywhere.
 */
export function ticketCost(stored: StoredTicket): number {
  return utf8ByteLength(JSON.stringify(stored)) + TICKET_OVERHEAD_BYTES;
}

/** Per-ticket allowance beyond its JSON (a 64-character hashed key, entry and headers). */
export const TICKET_OVERHEAD_BYTES = 256;

/** The bounds every ticket store enforces. */
export interface TicketLimits {
  /**
   * Most bytes ({@linkcode ticketCost}) of outstanding tickets; issuing past
   * it answers `null`.
   *
   * @default {DEFAULT_TICKET_STORE_MAX_BYTES}
   */
  maxBytes?: number;
  /** Most outstanding tickets; issuing past it answers `null`. @default {DEFAULT_MAX_TICKETS} */
  maxTickets?: number;
}

/**
 * The usage windows a shared store counts in: one per ticket lifetime.
 * Every ticket alive at `now` was issued in the current or the previous
 * window, so their sum bounds what is outstanding (redeemed tickets keep
 * counting until their window passes: a shared store may refuse sooner than
 * the memory store, never later).
 */
export function usageWindows(now: number, ttlMs: number): { current: number; previous: number } {
  const current = Math.floor(now / ttlMs);
  return { current, previous: current - 1 };
}

/** True when a value read back from a shared store has the shape of a {@linkcode StoredTicket}. */
export function isStoredTicket(value: unknown): value is StoredTicket {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.principal === "object" && v.principal !== null &&
    typeof v.expiresAt === "number" && (v.origin === null || typeof v.origin === "string");
}

/** A ticket read back as JSON text (Redis), or `undefined` when the text is not one of ours. */
export function parseStoredTicket(text: string): StoredTicket | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isStoredTicket(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
