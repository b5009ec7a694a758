/**
 * Builds the ticket store that `STORE` implies: KV for `STORE=kv` (tickets
 * work on any isolate), otherwise this isolate's memory. The only place that
 * knows every backend.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import type { Config } from "../../config.ts";
import { leaseKv } from "../_kv.ts";
import { KvTicketStore } from "./kv.ts";
import { MemoryTicketStore } from "./memory.ts";
import type { TicketStore } from "./types.ts";

/**
 * The configured ticket store; a KV database is leased on first use.
 *
 * @example
 * ```ts ignore
 * const tickets = createTicketStore(config);
 * ```
 */
export function createTicketStore(config: Config, options: { clock?: Clock } = {}): TicketStore {
  const { clock } = options;
  const ttlMs = config.ticketTtlMs;
  if (config.store !== "kv") {
    return new MemoryTicketStore({ ttlMs, ...(clock === undefined ? {} : { clock }) });
  }
  const lease = leaseKv(config.kv.path);
  return new KvTicketStore({
    kv: lease.then((l) => l.kv),
    ttlMs,
    prefix: [config.bus.channel],
    onClose: () => void lease.then((l) => l.release(), () => {}),
    ...(clock === undefined ? {} : { clock }),
  });
}
