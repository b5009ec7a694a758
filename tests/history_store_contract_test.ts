/**
 * Runs the history store contract (tests/_history_contract.ts) unchanged
 * against every backend. A new backend adds one `historyStoreContract` call.
 *
 * @module
 */
import { KvHistoryStore } from "../lib/store/history/kv.ts";
import { MemoryHistoryStore } from "../lib/store/history/memory.ts";
import { createRedisHistoryStore } from "../lib/store/history/redis.ts";
import type { HistoryStore } from "../lib/store/history/types.ts";
import { historyStoreContract } from "./_history_contract.ts";
import { FakeClock } from "./_helpers.ts";
import { RedisServer, redisServerPath, skipRedis } from "./_redis.ts";

historyStoreContract({
  name: "memory",
  ttlMs: 1000,
  open() {
    const clock = new FakeClock();
    const stores: HistoryStore[] = [new MemoryHistoryStore({ clock })];
    return Promise.resolve({
      get store() {
        return stores[0]!;
      },
      advance(ms: number) {
        clock.advance(ms);
        return Promise.resolve();
      },
      losePast() {
        // A restart: the old instance's streams are gone with it.
        const fresh = new MemoryHistoryStore({ clock });
        stores.unshift(fresh);
        return Promise.resolve(fresh);
      },
      async close() {
        for (const store of stores) await store.close();
      },
    });
  },
});

let redis: RedisServer | undefined;

historyStoreContract({
  name: "redis",
  ignore: skipRedis,
  // Redis expires by its own clock: real time passes in the TTL cases.
  ttlMs: 1000,
  async before() {
    if (redisServerPath === undefined) throw new Error("CI is set but redis-server is not on PATH");
    redis = await RedisServer.start(redisServerPath);
  },
  async after() {
    await redis?.stop();
  },
  async open() {
    const server = redis!;
    // A prefix per case keeps cases apart on one server.
    const prefix = `contract-${crypto.randomUUID()}`;
    const store = await createRedisHistoryStore({
      url: server.url,
      prefix,
      publish: { instanceId: "contract" },
    });
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

/** A KV-backed case: its own database, a fake clock for expiry, the past lost by deleting every key. */
function kvSuite(name: string, path: () => Promise<string>): void {
  const dirs: string[] = [];
  historyStoreContract({
    name,
    ttlMs: 60_000,
    async open() {
      const file = await path();
      if (file !== ":memory:") dirs.push(file.slice(0, file.lastIndexOf("/")));
      const kv = await Deno.openKv(file);
      const clock = new FakeClock();
      const store = new KvHistoryStore({ kv, clock });
      return {
        store,
        advance(ms: number) {
          clock.advance(ms);
          return Promise.resolve();
        },
        async losePast() {
          for await (const { key } of kv.list({ prefix: [] })) await kv.delete(key);
          return store;
        },
        async close() {
          await store.close();
          kv.close();
        },
      };
    },
    async after() {
      for (const dir of dirs) await Deno.remove(dir, { recursive: true });
    },
  });
}

kvSuite("kv (file)", async () => `${await Deno.makeTempDir({ prefix: "kv-history-" })}/db.kv`);
kvSuite("kv (:memory:)", () => Promise.resolve(":memory:"));
