/**
 * Runs the ticket store contract (tests/_tickets_contract.ts) unchanged
 * against every backend: memory, Redis, and KV on a file and in memory. A
 * new backend adds one `ticketStoreContract` call.
 *
 * @module
 */
import { KvTicketStore } from "../lib/store/tickets/kv.ts";
import { MemoryTicketStore } from "../lib/store/tickets/memory.ts";
import { RedisTicketStore } from "../lib/store/tickets/redis.ts";
import type { TicketStore } from "../lib/store/tickets/types.ts";
import { KV_VARIANTS, openCaseKv, Opened, redisSuite } from "./_contract.ts";
import { ticketStoreContract } from "./_tickets_contract.ts";

ticketStoreContract({
  name: "memory",
  open() {
    const opened = new Opened<TicketStore>();
    return Promise.resolve({
      shared: false,
      open: (o) => opened.add(new MemoryTicketStore(o)),
      close: () => opened.close(),
    });
  },
});

const redis = redisSuite();
ticketStoreContract({
  name: "redis",
  ...redis.hooks,
  open() {
    const { url } = redis.server;
    const prefix = redis.prefix();
    const opened = new Opened<TicketStore>();
    return Promise.resolve({
      shared: true,
      open: (o) => opened.add(new RedisTicketStore({ url, prefix, ...o })),
      close: () => opened.close(),
    });
  },
});

for (const { name, inFile } of KV_VARIANTS) {
  ticketStoreContract({
    name,
    async open() {
      const db = await openCaseKv(inFile);
      const opened = new Opened<TicketStore>();
      return {
        shared: true,
        open: (o) => opened.add(new KvTicketStore({ kv: db.kv, ...o })),
        async close() {
          await opened.close();
          await db.close();
        },
      };
    },
  });
}
