/**
 * Runs the presence store contract (tests/_presence_contract.ts) unchanged
 * against every backend: memory, Redis, Redis Cluster, and KV on a file and in memory. A
 * new backend adds one `presenceStoreContract` call.
 *
 * @module
 */
import { KvPresenceStore } from "../lib/store/presence/kv.ts";
import { MemoryPresenceStore } from "../lib/store/presence/memory.ts";
import { createRedisPresenceStore } from "../lib/store/presence/redis.ts";
import { KV_VARIANTS, openCaseKv, redisClusterSuite, redisSuite } from "./_contract.ts";
import { presenceStoreContract } from "./_presence_contract.ts";
import { FakeClock } from "./_helpers.ts";

presenceStoreContract({
  name: "memory",
  ttlMs: 3000,
  open(ttlMs) {
    const clock = new FakeClock();
    const store = new MemoryPresenceStore({ clock, ttlMs });
    return Promise.resolve({
      store,
      advance: (ms: number) => Promise.resolve(clock.advance(ms)),
      leftovers: () => Promise.resolve(store.size + store.instances),
      close: () => store.close(),
    });
  },
});

const redis = redisSuite();
presenceStoreContract({
  name: "redis",
  ...redis.hooks,
  // Redis expires by its own clock: real time passes in the TTL cases.
  ttlMs: 600,
  async open(ttlMs) {
    const server = redis.server;
    const prefix = redis.prefix();
    const store = await createRedisPresenceStore({ url: server.url, prefix, ttlMs });
    return {
      store,
      advance: (ms: number) => new Promise((resolve) => setTimeout(resolve, ms)),
      async leftovers() {
        const script = "return #redis.call('KEYS', ARGV[1])";
        const reply = await server.command("EVAL", script, "0", `${prefix}:*`);
        return Number(reply.slice(1));
      },
      close: () => store.close(),
    };
  },
});

const cluster = redisClusterSuite();
presenceStoreContract({
  name: "redis cluster",
  ...cluster.hooks,
  ttlMs: 600,
  async open(ttlMs) {
    const prefix = cluster.prefix();
    const store = await createRedisPresenceStore({ url: cluster.target, prefix, ttlMs });
    return {
      store,
      advance: (ms: number) => new Promise((resolve) => setTimeout(resolve, ms)),
      async leftovers() {
        const keys = await cluster.cluster.keysByNode(`${prefix}:*`);
        return [...keys.values()].reduce((sum, found) => sum + found.length, 0);
      },
      close: () => store.close(),
    };
  },
});

for (const { name, inFile } of KV_VARIANTS) {
  presenceStoreContract({
    name,
    ttlMs: 3000,
    async open(ttlMs) {
      const db = await openCaseKv(inFile);
      const clock = new FakeClock();
      const store = new KvPresenceStore({ kv: db.kv, clock, ttlMs });
      return {
        store,
        advance: (ms: number) => Promise.resolve(clock.advance(ms)),
        async leftovers() {
          let keys = 0;
          for await (const _ of db.kv.list({ prefix: [] })) keys++;
          return keys;
        },
        async close() {
          await store.close();
          await db.close();
        },
      };
    },
  });
}
