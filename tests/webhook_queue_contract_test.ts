/**
 * Runs the webhook queue contract (tests/_webhook_queue_contract.ts)
 * unchanged against every backend: memory, Redis, and KV on a file and in
 * memory.
 *
 * @module
 */
import { KvWebhookQueue } from "../lib/store/webhooks/kv.ts";
import { MemoryWebhookQueue } from "../lib/store/webhooks/memory.ts";
import { RedisWebhookQueue } from "../lib/store/webhooks/redis.ts";
import type { WebhookQueue } from "../lib/store/webhooks/types.ts";
import { KV_VARIANTS, openCaseKv, Opened, redisClusterSuite, redisSuite } from "./_contract.ts";
import { webhookQueueContract } from "./_webhook_queue_contract.ts";
import assert from "node:assert/strict";
import { newEventId } from "../lib/webhooks/events.ts";
import { FakeClock } from "./_helpers.ts";

webhookQueueContract({
  name: "memory",
  open() {
    const opened = new Opened<WebhookQueue>();
    return Promise.resolve({
      durable: false,
      open: (o) => opened.add(new MemoryWebhookQueue(o)),
      close: () => opened.close(),
    });
  },
});

const redis = redisSuite();
webhookQueueContract({
  name: "redis",
  ...redis.hooks,
  open() {
    const { url } = redis.server;
    const prefix = redis.prefix();
    const opened = new Opened<WebhookQueue>();
    return Promise.resolve({
      durable: true,
      open: (o) => opened.add(new RedisWebhookQueue({ url, prefix, ...o })),
      close: () => opened.close(),
    });
  },
});

const cluster = redisClusterSuite();
webhookQueueContract({
  name: "redis cluster",
  ...cluster.hooks,
  open() {
    const { target } = cluster;
    const prefix = cluster.prefix();
    const opened = new Opened<WebhookQueue>();
    return Promise.resolve({
      durable: true,
      open: (o) => opened.add(new RedisWebhookQueue({ url: target, prefix, ...o })),
      close: () => opened.close(),
    });
  },
});

for (const { name, inFile } of KV_VARIANTS) {
  webhookQueueContract({
    name,
    async open() {
      const db = await openCaseKv(inFile);
      const opened = new Opened<WebhookQueue>();
      return {
        durable: true,
        open: (o) => opened.add(new KvWebhookQueue({ kv: db.kv, ...o })),
        async close() {
          await opened.close();
          await db.close();
        },
      };
    },
  });
}

Deno.test("webhook queue on KV: an entry leased after its due index was read is not claimed again", async () => {
  // Two isolates claim at once: one reads the due index, the other leases the
  // entry and commits, then the first reads the entry (with its new
  // versionstamp). The stale index row below stands for that first read.
  const kv = await Deno.openKv(":memory:");
  try {
    const clock = new FakeClock();
    const one = new KvWebhookQueue({ kv, clock });
    const two = new KvWebhookQueue({ kv, clock });
    const entry = {
      id: newEventId(clock.now()),
      queuedAt: clock.now(),
      attempts: 0,
      event: '{"n":1}',
    };
    await one.push("s", [entry]);
    assert.deepEqual((await one.claim("s", 10, 5000)).map((e) => e.id), [entry.id]);
    await kv.set(["realtime", "webhooks", "s", "d", clock.now(), entry.id], true);
    assert.deepEqual(await two.claim("s", 10, 5000), [], "leased by the other isolate");
    clock.advance(5000);
    assert.deepEqual((await two.claim("s", 10, 5000)).map((e) => e.id), [entry.id]);
    await Promise.all([one.close(), two.close()]);
  } finally {
    kv.close();
  }
});
