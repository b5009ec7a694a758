/**
 * Tickets on Deno KV (`STORE=kv`): a ticket issued on any isolate (or Deno
 * Deploy region) is redeemed on whichever one the WebSocket lands, exactly
 * once. Stored under `[…, "tickets", sha256(ticket)]` (the database never
 * holds a usable ticket) with `expireIn`; redeeming is an atomic
 * check-and-delete, so of two concurrent redeems only one finds it.
 *
 * @module
 */
import type { Principal } from "../../auth.ts";
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import { KvHandle, sha256Hex } from "../_kv.ts";
import { judge } from "./memory.ts";
import {
  isStoredTicket,
  type IssuedTicket,
  newTicket,
  type Redemption,
  type StoredTicket,
  type StoreHealth,
  ticketExpiry,
  type TicketStore,
} from "./types.ts";

/** Options for {@linkcode KvTicketStore}. */
export interface KvTicketStoreOptions {
  /** The database, or its coming handle; not closed by the store (see `onClose`). */
  kv: Deno.Kv | Promise<Deno.Kv>;
  /** How long a ticket stays valid, in ms. */
  ttlMs: number;
  /** @default {["realtime"]} */
  prefix?: Deno.KvKey;
  /** How long operations retry a failing database, in ms. @default 3000 */
  unavailableAfterMs?: number;
  /** Called once by `close`. */
  onClose?: () => void;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * The shared {@linkcode TicketStore} on Deno KV.
 *
 * @example
 * ```ts ignore
 * const kv = await Deno.openKv(":memory:");
 * const tickets = new KvTicketStore({ kv, ttlMs: 30_000 });
 * const issued = await tickets.issue(principal, null);
 * ```
 */
export class KvTicketStore implements TicketStore {
  readonly kind = "kv";
  readonly shared = true;
  readonly size = 0;
  readonly #handle: KvHandle;
  readonly #ttlMs: number;
  readonly #prefix: Deno.KvKey;
  readonly #clock: Clock;

  /** @param options the database, ttl, prefix and clock */
  constructor(options: KvTicketStoreOptions) {
    const { ttlMs, prefix = ["realtime"], clock = systemClock } = options;
    this.#handle = new KvHandle(options, { name: "ticket store" });
    this.#ttlMs = ttlMs;
    this.#prefix = prefix;
    this.#clock = clock;
  }

  issue(principal: Principal, origin: string | null): Promise<IssuedTicket | null> {
    return this.#handle.run("issue a ticket", async (kv) => {
      const ticket = newTicket();
      const now = this.#clock.now();
      const expiresAt = ticketExpiry(principal, now, this.#ttlMs);
      const value: StoredTicket = { principal: { ...principal }, origin, expiresAt };
      await kv.set(await this.#key(ticket), value, { expireIn: Math.max(1, expiresAt - now) });
      return { ticket, expiresAt };
    });
  }

  redeem(ticket: string, origin: string | null): Promise<Redemption> {
    return this.#handle.run("redeem a ticket", async (kv) => {
      const key = await this.#key(ticket);
      const entry = await kv.get<StoredTicket>(key);
      if (entry.versionstamp === null || !isStoredTicket(entry.value)) {
        return { ok: false, reason: "ticket_invalid" } as const;
      }
      // Only the redeem whose delete commits against this version gets it.
      const taken = await kv.atomic().check(entry).delete(key).commit();
      if (!taken.ok) return { ok: false, reason: "ticket_invalid" } as const;
      return judge(entry.value, origin, this.#clock.now());
    });
  }

  sweep(): void {}

  health(): StoreHealth {
    return this.#handle.health();
  }

  close(): Promise<void> {
    return this.#handle.close();
  }

  async #key(ticket: string): Promise<Deno.KvKey> {
    return [...this.#prefix, "tickets", await sha256Hex(ticket)];
  }
}
