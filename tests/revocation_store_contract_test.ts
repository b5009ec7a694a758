/**
 * Runs the revocation store contract (tests/_revocations_contract.ts)
 * unchanged against every backend: memory, Redis, and KV on a file and in
 * memory. A new backend adds one `revocationStoreContract` call; below the
 * contract, what only Redis does (an outage and its recovery).
 *
 * @module
 */
import assert from "node:assert/strict";
import { KvRevocationStore } from "../lib/store/revocations/kv.ts";
import { MemoryRevocationStore } from "../lib/store/revocations/memory.ts";
import { RedisRevocationStore } from "../lib/store/revocations/redis.ts";
import type { RevocationStore } from "../lib/store/revocations/types.ts";
import { KV_VARIANTS, openCaseKv, Opened, redisSuite } from "./_contract.ts";
import { FakeClock } from "./_helpers.ts";
import { redisTest } from "./_redis.ts";
import { revocationStoreContract } from "./_revocations_contract.ts";

revocationStoreContract({
  name: "memory",
  open() {
    const opened = new Opened<RevocationStore>();
    return Promise.resolve({
      shared: false,
      open: (o) => opened.add(new MemoryRevocationStore(o)),
      close: () => opened.close(),
    });
  },
});

const redis = redisSuite();
revocationStoreContract({
  name: "redis",
  ...redis.hooks,
  open() {
    const { url } = redis.server;
    const prefix = redis.prefix();
    const opened = new Opened<RevocationStore>();
    return Promise.resolve({
      shared: true,
      open: (o) => opened.add(new RedisRevocationStore({ url, prefix, ...o })),
      close: () => opened.close(),
    });
  },
});

for (const { name, inFile } of KV_VARIANTS) {
  revocationStoreContract({
    name,
    async open() {
      const db = await openCaseKv(inFile);
      const opened = new Opened<RevocationStore>();
      return {
        shared: true,
        open: (o) => opened.add(new KvRevocationStore({ kv: db.kv, ...o })),
        async close() {
          await opened.close();
          await db.close();
        },
      };
    },
  });
}

redisTest(
  "revocation store (redis): unreachable Redis rejects with StoreUnavailableError and recovers",
  async (redis) => {
    const clock = new FakeClock();
    const store = new RedisRevocationStore({
      url: redis.url,
      prefix: "faults",
      clock,
      commandTimeoutMs: 1000,
      // Reconnect attempts come well within the one command timeout a call waits for the link.
      maxReconnectDelayMs: 200,
    });
    try {
      const now = clock.now();
      await store.add({
        kind: "user",
        subject: "alice",
        revokedAt: now,
        until: now + 60_000,
        by: "t",
      });
      await redis.stop();
      await assert.rejects(store.list(), { name: "StoreUnavailableError" });
      assert.equal(store.health().status, "degraded");
      await redis.restart();
      // Persistence is off in tests: the restarted Redis is empty, and reachable again.
      assert.deepEqual(await store.list(), []);
      assert.equal(store.health().status, "ok");
    } finally {
      await store.close();
    }
  },
);
