/**
 * Builds the ticket store that `STORE` implies: KV for `STORE=kv` and Redis
 * for `STORE=redis` (tickets work on any isolate or node), otherwise this
 * isolate's memory. The only place that
 * knows every backend.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import type { Config } from "../../config.ts";
import { leaseKv } from "../_kv.ts";
import { KvTicketStore } from "./kv.ts";
import { MemoryTicketStore } from "./memory.ts";
import { createRedisTicketStore } from "./redis.ts";
import type { TicketStore } from "./types.ts";

/**
 * The configured ticket store; a KV database is leased on first use.
 *
 * @example
 * ```ts ignore
 * const tickets = await createTicketStore(config);
 * ```
 */
export async function createTicketStore(
  config: Pick<Config, "store"> & { auth: Pick<Config["auth"], "tickets"> },
  options: { clock?: Clock; onError?: (error: Error) => void } = {},
): Promise<TicketStore> {
  const { clock } = options;
  const ttlMs = config.auth.tickets.ttlMs;
  const maxBytes = config.auth.tickets.maxBytes;
  if (config.store.kind === "redis") {
    // Waits (2 s at most) for the first connection, as the bus does; never
    // rejects for an unreachable Redis.
    return await createRedisTicketStore({
      url: config.store.redis!.url,
      ttlMs,
      maxBytes,
      prefix: config.store.redis!.prefix,
      ...(clock === undefined ? {} : { clock }),
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    });
  }
  if (config.store.kind !== "kv") {
    return new MemoryTicketStore({ ttlMs, maxBytes, ...(clock === undefined ? {} : { clock }) });
  }
  const lease = leaseKv(config.store.kv.path);
  return new KvTicketStore({
    kv: lease.then((l) => l.kv),
    ttlMs,
    maxBytes,
    prefix: [config.store.kv.prefix],
    onClose: () => void lease.then((l) => l.release(), () => {}),
    ...(clock === undefined ? {} : { clock }),
  });
}
