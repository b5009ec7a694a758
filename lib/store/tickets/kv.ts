/**
 * Tickets on Deno KV (`STORE=kv`): a ticket issued on any isolate (or Deno
 * Deploy region) is redeemed on whichever one the WebSocket lands, exactly
 * once. Stored under `[…, "tickets", sha256(ticket)]` (the database never
 * holds a usable ticket) with `expireIn`; redeeming is an atomic
 * check-and-delete, so of two concurrent redeems only one finds it. Issuing
 * charges the ticket to a usage record per ticket lifetime
 * (`[…, "ticket_usage", window]`) in the same atomic operation, and refuses
 * past the limits.
 *
 * @module
 */
import type { Principal } from "../../core/auth.ts";
import { CONFLICT, KvHandle, type KvHandleOptions } from "../_kv.ts";
import type { StoreHealth } from "../types.ts";
import { SharedTicketStore, ticketHash, type TicketRulesOptions } from "./_rules.ts";
import {
  isStoredTicket,
  type IssuedTicket,
  type Redemption,
  type StoredTicket,
  type TicketStore,
} from "./types.ts";

/** What the tickets issued in one window were charged. */
interface Usage {
  bytes: number;
  count: number;
}

function usageOf(entry: Deno.KvEntryMaybe<Usage>): Usage {
  const v = entry.value;
  return v !== null && typeof v.bytes === "number" && typeof v.count === "number"
    ? v
    : { bytes: 0, count: 0 };
}

/** Options for {@linkcode KvTicketStore}. */
export interface KvTicketStoreOptions extends TicketRulesOptions, KvHandleOptions {
  /** @default {["realtime"]} */
  prefix?: Deno.KvKey;
  /** Told of each operation that gave up (the database is unavailable). */
  onError?: (error: Error) => void;
}

/**
 * The shared {@linkcode TicketStore} on Deno KV. It has no `sweep`: KV
 * expires each ticket's key (`expireIn`) by itself.
 *
 * @example
 * ```ts ignore
 * const kv = await Deno.openKv(":memory:");
 * const tickets = new KvTicketStore({ kv, ttlMs: 30_000 });
 * const issued = await tickets.issue(principal, null);
 * ```
 */
export class KvTicketStore extends SharedTicketStore implements TicketStore {
  readonly kind = "kv";
  readonly #handle: KvHandle;
  readonly #prefix: Deno.KvKey;

  /** @param options the database, ttl, bounds, prefix and clock */
  constructor(options: KvTicketStoreOptions) {
    super(options);
    const { prefix = ["realtime"], onError } = options;
    this.#handle = new KvHandle(options, {
      name: "ticket store",
      ...(onError === undefined ? {} : { onError }),
    });
    this.#prefix = prefix;
  }

  issue(principal: Principal, origin: string | null): Promise<IssuedTicket | null> {
    return this.#handle.run("issue a ticket", async (kv) => {
      const { issued, stored, cost, now, lifetimeMs } = this.rules.draft(principal, origin);
      const { current, previous } = this.rules.windows(now);
      const curKey = [...this.#prefix, "ticket_usage", current];
      const [cur, prev] = await kv.getMany<[Usage, Usage]>([
        curKey,
        [...this.#prefix, "ticket_usage", previous],
      ]);
      const used = [usageOf(cur), usageOf(prev)];
      const bytes = used[0]!.bytes + used[1]!.bytes + cost;
      const count = used[0]!.count + used[1]!.count + 1;
      if (!this.rules.allows(bytes, count)) return null;
      const charged: Usage = { bytes: used[0]!.bytes + cost, count: used[0]!.count + 1 };
      // Both windows checked: a concurrent issue on any isolate retries with fresh counts.
      const committed = await kv.atomic().check(cur, prev)
        .set(curKey, charged, { expireIn: this.rules.usageTtlMs })
        .set(await this.#key(issued.ticket), stored, { expireIn: lifetimeMs })
        .commit();
      return committed.ok ? issued : CONFLICT;
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
      return this.rules.judge(entry.value, origin);
    });
  }

  health(): StoreHealth {
    return this.#handle.health();
  }

  close(): Promise<void> {
    return this.#handle.close();
  }

  async #key(ticket: string): Promise<Deno.KvKey> {
    return [...this.#prefix, "tickets", await ticketHash(ticket)];
  }
}
