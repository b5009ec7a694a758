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
import { KV_VARIANTS, openCaseKv, Opened, redisSuite } from "./_contract.ts";
import { webhookQueueContract } from "./_webhook_queue_contract.ts";

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
