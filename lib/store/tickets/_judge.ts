/**
 * What every ticket backend decides the same way: the verdict on a ticket
 * taken out of a store, and the hash a shared store keys it by (so the
 * database never holds a usable ticket).
 *
 * @module
 */
import { sha256Hex } from "../_hash.ts";
import type { Redemption, StoredTicket } from "./types.ts";

/** The verdict on a ticket taken out of a store: expired, bound to another Origin, or good. */
export function judge(entry: StoredTicket, origin: string | null, now: number): Redemption {
  if (entry.expiresAt <= now) return { ok: false, reason: "ticket_invalid" };
  if (entry.origin !== null && entry.origin !== origin) {
    return { ok: false, reason: "ticket_origin_mismatch" };
  }
  return { ok: true, principal: entry.principal };
}

/** The key part a shared store keeps a ticket under: its SHA-256, never the ticket. */
export function ticketHash(ticket: string): Promise<string> {
  return sha256Hex(ticket);
}
