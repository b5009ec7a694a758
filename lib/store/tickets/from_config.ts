/**
 * Builds the ticket store that `STORE` implies: KV for `STORE=kv` and Redis
 * for `STORE=redis` (tickets work on any isolate or node), otherwise this
 * isolate's memory. The only place that knows every backend, and the one
 * mapping from the configuration to what this store reads
 * ({@linkcode ticketStoreSlice}).
 *
 * @module
 */
import type { Config } from "../../config.ts";
import { openStore, storeSliceOf } from "../_slice.ts";
import type { StoreContext, StoreSlice } from "../types.ts";
import { KvTicketStore } from "./kv.ts";
import { MemoryTicketStore } from "./memory.ts";
import { createRedisTicketStore } from "./redis.ts";
import type { TicketStore } from "./types.ts";

/** What the ticket store reads of the configuration. */
export interface TicketStoreSlice extends StoreSlice {
  /** `TICKET_TTL_MS`: how long a ticket stays valid. */
  ttlMs: number;
  /** `TICKET_STORE_MAX_BYTES`: what all outstanding tickets may take. */
  maxBytes: number;
}

/** The ticket store's slice of `config`. */
export function ticketStoreSlice(config: Pick<Config, "auth" | "store">): TicketStoreSlice {
  const { ttlMs, maxBytes } = config.auth.tickets;
  return { ...storeSliceOf(config), ttlMs, maxBytes };
}

/**
 * The configured ticket store.
 *
 * @example
 * ```ts ignore
 * const tickets = await createTicketStore(ticketStoreSlice(config), {});
 * ```
 */
export async function createTicketStore(
  slice: TicketStoreSlice,
  context: StoreContext,
): Promise<TicketStore> {
  const { ttlMs, maxBytes } = slice;
  return await openStore<TicketStore>(slice, context, {
    memory: (common) => new MemoryTicketStore({ ...common, ttlMs, maxBytes }),
    // Waits (2 s at most) for the first connection, as the bus does; never
    // rejects for an unreachable Redis.
    redis: (common) => createRedisTicketStore({ ...common, ttlMs, maxBytes }),
    kv: (common) => new KvTicketStore({ ...common, ttlMs, maxBytes }),
  });
}
