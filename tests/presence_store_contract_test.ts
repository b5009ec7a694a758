/**
 * Runs the presence store contract (tests/_presence_contract.ts) unchanged
 * against every backend. A new backend adds one `presenceStoreContract` call.
 *
 * @module
 */
import { KvPresenceStore } from "../lib/store/presence/kv.ts";
import { MemoryPresenceStore } from "../lib/store/presence/memory.ts";
import { createRedisPresenceStore } from "../lib/store/presence/redis.ts";
import { presenceStoreContract } from "./_presence_contract.ts";
import { FakeClock } from "./_helpers.ts";
import { RedisServer, redisServerPath, skipRedis } from "./_redis.ts";

presenceStoreContract({
  name: "memory",
  ttlMs: 3000,
  open(ttlMs) {
    const clock = new FakeClock();
    const store = new MemoryPresenceStore({ clock, ttlMs });
    return Promise.resolve({
      store,
      advance(ms: number) {
        clock.advance(ms);
        return Promise.resolve();
      },
      leftovers: () => Promise.resolve(store.size + store.instances),
      close: () => store.close(),
    });
  },
});

let redis: RedisServer | undefined;

presenceStoreContract({
  name: "redis",
  ignore: skipRedis,
  // Redis expires by its own clock: real time passes in the TTL cases.
  ttlMs: 600,
  async before() {
    if (redisServerPath === undefined) throw new Error("CI is set but redis-server is not on PATH");
    redis = await RedisServer.start(redisServerPath);
  },
  async after() {
    await redis?.stop();
  },
  async open(ttlMs) {
    const server = redis!;
    const prefix = `contract-${crypto.randomUUID()}`;
    const store = await createRedisPresenceStore({ url: server.url, prefix, ttlMs });
    return {
      store,
      advance: (ms: number) => new Promise((resolve) => setTimeout(resolve, ms)),
      async leftovers() {
        const reply = await server.command(
          "EVAL",
          "return #redis.call('KEYS', ARGV[1])",
          "0",
          `${prefix}:*`,
        );
        return Number(reply.slice(1));
      },
      close: () => store.close(),
    };
  },
});

/** KV: a fresh database per case (a file in a temp dir, or `:memory:`), a fake clock for expiry. */
function kvContract(name: string, inFile: boolean): void {
  presenceStoreContract({
    name,
    ttlMs: 3000,
    async open(ttlMs) {
      const dir = inFile ? await Deno.makeTempDir({ prefix: "kv-presence-" }) : undefined;
      const kv = await Deno.openKv(dir === undefined ? ":memory:" : `${dir}/db.kv`);
      const clock = new FakeClock();
      const store = new KvPresenceStore({ kv, clock, ttlMs });
      return {
        store,
        advance(ms: number) {
          clock.advance(ms);
          return Promise.resolve();
        },
        async leftovers() {
          let keys = 0;
          for await (const _ of kv.list({ prefix: [] })) keys++;
          return keys;
        },
        async close() {
          await store.close();
          kv.close();
          if (dir !== undefined) await Deno.remove(dir, { recursive: true });
        },
      };
    },
  });
}

kvContract("kv (file)", true);
kvContract("kv (:memory:)", false);
