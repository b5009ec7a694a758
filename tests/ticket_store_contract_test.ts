/**
 * Runs the ticket store contract (tests/_tickets_contract.ts) unchanged
 * against every backend: memory, Redis, and KV on a file and in memory. A
 * new backend adds its suite to `storeSuites`
 * (tests/_contract.ts) and one maker here.
 *
 * @module
 */
import { KvTicketStore } from "../lib/store/tickets/kv.ts";
import { MemoryTicketStore } from "../lib/store/tickets/memory.ts";
import { RedisTicketStore } from "../lib/store/tickets/redis.ts";
import type { TicketStore } from "../lib/store/tickets/types.ts";
import { storeSuites } from "./_contract.ts";
import { ticketStoreContract, type TicketStoreOptions } from "./_tickets_contract.ts";

const backends = storeSuites<TicketStore, TicketStoreOptions>({
  memory: (options) => new MemoryTicketStore(options),
  redis: (where, options) => new RedisTicketStore({ ...where, ...options }),
  kv: (kv, options) => new KvTicketStore({ kv, ...options }),
});
for (const suite of backends) ticketStoreContract(suite);
