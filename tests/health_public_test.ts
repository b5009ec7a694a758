/**
 * `/healthz` is public: during an outage it says what is degraded, never the
 * error text (which names the backend's address). The detail stays in the
 * logs and in the authenticated admin feed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createBus } from "../lib/bus/from_config.ts";
import { loadConfig } from "../lib/config.ts";
import { createHistoryStore, historyStoreSlice } from "../lib/store/history/from_config.ts";
import {
  createRevocationStore,
  revocationStoreSlice,
} from "../lib/store/revocations/from_config.ts";
import { eventually, SECRET, startServer } from "./_helpers.ts";
import { redisTest } from "./_redis.ts";

const API_KEY = "k".repeat(40);

redisTest(
  "healthz: Redis down shows `degraded` but no error detail; admin stats keep it",
  async (redis) => {
    const env = {
      BUS: "redis",
      STORE: "redis",
      REDIS_URL: redis.url,
      BUS_CHANNEL: `health-${crypto.randomUUID()}`,
      HISTORY_SIZE: "10",
      API_KEY,
    };
    const config = loadConfig({ JWT_SECRET: SECRET, ...env });
    const bus = await createBus(config);
    await using ts = await startServer(env, {
      bus,
      history: () => createHistoryStore(historyStoreSlice(config), {}),
      revocationStore: () => createRevocationStore(revocationStoreSlice(config), {}),
    });
    await eventually(() => ts.server.health().status === "ok", 5000, "healthy at first");
    await redis.stop();
    await eventually(
      () => {
        const h = ts.server.health();
        // Once reconnecting, the error names the address (`connect ECONNREFUSED 127.0.0.1:…`).
        return h.bus.status === "degraded" && h.history.status === "degraded" &&
          h.store.status === "degraded" && (h.bus.detail ?? "").includes(String(redis.port));
      },
      10_000,
      "bus, history and store degraded, the detail naming the address",
    );
    const res = await fetch(`${ts.httpUrl}/healthz`);
    const text = await res.text();
    const body = JSON.parse(text);
    assert.equal(res.status, 200);
    assert.equal(body.status, "degraded");
    assert.deepEqual(
      [body.bus.status, body.history.status, body.store.status],
      ["degraded", "degraded", "degraded"],
    );
    assert.equal(body.bus.transport, "redis");
    assert.ok(!text.includes("detail"), text);
    assert.ok(!text.includes(String(redis.port)), `the Redis port leaks: ${text}`);
    assert.ok(!/ECONNREFUSED|127\.0\.0\.1/.test(text), text);
    // The operator still sees why, behind the API key.
    const admin = await fetch(`${ts.httpUrl}/api/admin/stats`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    const stats = await admin.json();
    assert.equal(admin.status, 200);
    assert.equal(typeof stats.bus.detail, "string");
    assert.equal(typeof stats.store.detail, "string");
    assert.match(`${stats.bus.detail} ${stats.store.detail}`, new RegExp(String(redis.port)));
  },
);
