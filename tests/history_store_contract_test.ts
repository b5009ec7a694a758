/**
 * Runs the history store contract (tests/_history_contract.ts) unchanged
 * against every backend: memory, Redis, Redis Cluster, and KV on a file and in memory. A
 * new backend adds one `historyStoreContract` call.
 *
 * @module
 */
import { KvHistoryStore } from "../lib/store/history/kv.ts";
import { MemoryHistoryStore } from "../lib/store/history/memory.ts";
import { type RedisAppendOptions, RedisHistoryStore } from "../lib/store/history/redis.ts";
import type { AppendResult } from "../lib/store/history/types.ts";
import { KV_VARIANTS, openCaseKv, Opened, redisClusterSuite, redisSuite } from "./_contract.ts";
import { historyStoreContract } from "./_history_contract.ts";
import { FakeClock } from "./_helpers.ts";

/** The Redis store as the Redis broker drives it: each append publishes too. */
class PublishingRedisHistoryStore extends RedisHistoryStore {
  override append(room: string, frame: string, options: RedisAppendOptions): Promise<AppendResult> {
    return super.append(room, frame, { ...options, publishAs: "contract" });
  }
}

historyStoreContract({
  name: "memory",
  ttlMs: 1000,
  open() {
    const clock = new FakeClock();
    const opened = new Opened<MemoryHistoryStore>();
    let store = opened.add(new MemoryHistoryStore({ clock }));
    return Promise.resolve({
      get store() {
        return store;
      },
      advance: (ms: number) => Promise.resolve(clock.advance(ms)),
      // A restart: the old instance's streams are gone with it.
      losePast: () => Promise.resolve(store = opened.add(new MemoryHistoryStore({ clock }))),
      close: () => opened.close(),
    });
  },
});

const redis = redisSuite();
historyStoreContract({
  name: "redis",
  ...redis.hooks,
  // Redis expires by its own clock: real time passes in the TTL cases.
  ttlMs: 1000,
  async open() {
    const server = redis.server;
    // Every append also publishes, as under the Redis broker: the contract holds for that script too.
    const store = new PublishingRedisHistoryStore({ url: server.url, prefix: redis.prefix() });
    await store.ready(2000);
    return {
      store,
      advance: (ms: number) => new Promise((resolve) => setTimeout(resolve, ms)),
      async losePast() {
        // Redis lost its data (a restart without persistence, an eviction).
        await server.command("FLUSHALL");
        return store;
      },
      close: () => store.close(),
    };
  },
});

const cluster = redisClusterSuite();
historyStoreContract({
  name: "redis cluster",
  ...cluster.hooks,
  ttlMs: 1000,
  async open() {
    // Published with SPUBLISH on the room's shard, in the same script.
    const store = new PublishingRedisHistoryStore({
      url: cluster.target,
      prefix: cluster.prefix(),
    });
    await store.ready(2000);
    return {
      store,
      advance: (ms: number) => new Promise((resolve) => setTimeout(resolve, ms)),
      async losePast() {
        await cluster.cluster.onPrimaries(["FLUSHALL"]);
        return store;
      },
      close: () => store.close(),
    };
  },
});

for (const { name, inFile } of KV_VARIANTS) {
  historyStoreContract({
    name,
    ttlMs: 60_000,
    async open() {
      const db = await openCaseKv(inFile);
      const clock = new FakeClock();
      const store = new KvHistoryStore({ kv: db.kv, clock });
      return {
        store,
        advance: (ms: number) => Promise.resolve(clock.advance(ms)),
        async losePast() {
          for await (const { key } of db.kv.list({ prefix: [] })) await db.kv.delete(key);
          return store;
        },
        async close() {
          await store.close();
          await db.close();
        },
      };
    },
  });
}
