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
import { sha256Hex, withRetry } from "../_kv.ts";
import { judge } from "./memory.ts";
import {
  isStoredTicket,
  type IssuedTicket,
  newTicket,
  type Redemption,
  type StoredTicket,
  type StoreHealth,
  StoreUnavailableError,
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
  readonly #kv: Promise<Deno.Kv>;
  readonly #ttlMs: number;
  readonly #prefix: Deno.KvKey;
  readonly #unavailableAfterMs: number;
  readonly #onClose: () => void;
  readonly #clock: Clock;
  #failure: string | undefined;
  #closed = false;

  /** @param options the database, ttl, prefix and clock */
  constructor(options: KvTicketStoreOptions) {
    const {
      kv,
      ttlMs,
      prefix = ["realtime"],
      unavailableAfterMs = 3000,
      onClose = () => {},
      clock = systemClock,
    } = options;
    this.#kv = Promise.resolve(kv);
    this.#kv.catch(() => {});
    this.#ttlMs = ttlMs;
    this.#prefix = prefix;
    this.#unavailableAfterMs = unavailableAfterMs;
    this.#onClose = onClose;
    this.#clock = clock;
  }

  issue(principal: Principal, origin: string | null): Promise<IssuedTicket | null> {
    return this.#run("issue a ticket", async (kv) => {
      const ticket = newTicket();
      const now = this.#clock.now();
      const expiresAt = ticketExpiry(principal, now, this.#ttlMs);
      const value: StoredTicket = { principal: { ...principal }, origin, expiresAt };
      await kv.set(await this.#key(ticket), value, { expireIn: Math.max(1, expiresAt - now) });
      return { ticket, expiresAt };
    });
  }

  redeem(ticket: string, origin: string | null): Promise<Redemption> {
    return this.#run("redeem a ticket", async (kv) => {
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
    if (this.#closed) return { status: "degraded", transport: "kv", detail: "closed" };
    return this.#failure === undefined
      ? { status: "ok", transport: "kv" }
      : { status: "degraded", transport: "kv", detail: this.#failure };
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#onClose();
    }
    return Promise.resolve();
  }

  async #key(ticket: string): Promise<Deno.KvKey> {
    return [...this.#prefix, "tickets", await sha256Hex(ticket)];
  }

  async #run<T>(what: string, operation: (kv: Deno.Kv) => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreUnavailableError("ticket store is closed");
    try {
      const kv = await this.#kv;
      const result = await withRetry(() => operation(kv), {
        what,
        unavailableAfterMs: this.#unavailableAfterMs,
        stopped: () => this.#closed,
      });
      this.#failure = undefined;
      return result;
    } catch (err) {
      if (err instanceof StoreUnavailableError) {
        this.#failure = err.message;
        throw err;
      }
      if (err instanceof RangeError) throw err;
      this.#failure = err instanceof Error ? err.message : String(err);
      throw new StoreUnavailableError(`cannot ${what}: ${this.#failure}`, 1000, { cause: err });
    }
  }
}
