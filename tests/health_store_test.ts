/**
 * `/healthz`'s `store` field covers every concern on the shared store:
 * presence on Redis going down degrades it, and it heals.
 *
 * @module
 */
import assert from "node:assert/strict";
import { loadConfig } from "../lib/config.ts";
import { createPresenceStore, presenceStoreSlice } from "../lib/store/presence/from_config.ts";
import { MemoryRevocationStore } from "../lib/store/revocations/memory.ts";
import { MemoryTicketStore } from "../lib/store/tickets/memory.ts";
import { eventually, SECRET, startServer } from "./_helpers.ts";
import { redisTest } from "./_redis.ts";

redisTest("healthz: a presence store on Redis that goes down degrades `store`", async (redis) => {
  const env = {
    STORE: "redis",
    REDIS_URL: redis.url,
    BUS_CHANNEL: `health-${crypto.randomUUID()}`,
    PRESENCE: "1",
  };
  const config = loadConfig({ JWT_SECRET: SECRET, ...env });
  // Only presence lives on Redis here, so only its health can degrade `store`.
  await using ts = await startServer(env, {
    presence: () => createPresenceStore(presenceStoreSlice(config), {}),
    tickets: new MemoryTicketStore({ ttlMs: 30_000 }),
    revocationStore: new MemoryRevocationStore(),
  });
  await eventually(() => ts.server.health().store.status === "ok", 5000, "store ok");
  await redis.stop();
  await eventually(() => ts.server.health().store.status === "degraded", 10_000, "degraded");
  assert.equal(ts.server.health().status, "degraded");
  await redis.restart();
  await eventually(() => ts.server.health().store.status === "ok", 15_000, "healed");
});
