/**
 * Runs the revocation store contract (tests/_revocations_contract.ts)
 * unchanged against every backend: memory, Redis, and KV on a file and in
 * memory. A new backend adds its suite to `storeSuites`
 * (tests/_contract.ts) and one maker here; below the
 * contract, what only Redis does (an outage and its recovery).
 *
 * @module
 */
import assert from "node:assert/strict";
import { KvRevocationStore } from "../lib/store/revocations/kv.ts";
import { MemoryRevocationStore } from "../lib/store/revocations/memory.ts";
import { RedisRevocationStore } from "../lib/store/revocations/redis.ts";
import type { RevocationStore } from "../lib/store/revocations/types.ts";
import { storeSuites } from "./_contract.ts";
import { FakeClock } from "./_helpers.ts";
import { redisTest } from "./_redis.ts";
import { revocationStoreContract, type RevocationStoreOptions } from "./_revocations_contract.ts";

const backends = storeSuites<RevocationStore, RevocationStoreOptions>({
  memory: (options) => new MemoryRevocationStore(options),
  redis: (where, options) => new RedisRevocationStore({ ...where, ...options }),
  kv: (kv, options) => new KvRevocationStore({ kv, ...options }),
});
for (const suite of backends) revocationStoreContract(suite);

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
