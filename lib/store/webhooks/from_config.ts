/**
 * Builds the webhook queue named by `STORE`: this isolate's memory (lost on
 * restart), or Redis or KV (shared by every node, kept across restarts). The
 * only place that knows every backend, and the one mapping from the
 * configuration to what this store reads ({@linkcode webhookQueueSlice}).
 *
 * @module
 */
import type { Config } from "../../config.ts";
import { openStore, storeSliceOf } from "../_slice.ts";
import type { StoreContext, StoreSlice } from "../types.ts";
import { KvWebhookQueue } from "./kv.ts";
import { MemoryWebhookQueue } from "./memory.ts";
import { createRedisWebhookQueue } from "./redis.ts";
import type { WebhookQueue } from "./types.ts";

/** What the webhook queue reads of the configuration. */
export interface WebhookQueueSlice extends StoreSlice {
  /** `WEBHOOK_QUEUE_MAX`: most events queued per receiver. */
  maxEntries: number;
}

/** The webhook queue's slice of `config`. */
export function webhookQueueSlice(config: Pick<Config, "store" | "webhooks">): WebhookQueueSlice {
  return { ...storeSliceOf(config), maxEntries: config.webhooks.queueMax };
}

/**
 * The configured webhook queue. Redis keys are prefixed with `BUS_CHANNEL`.
 *
 * @example
 * ```ts ignore
 * const queue = await createWebhookQueue(webhookQueueSlice(config), {});
 * ```
 */
export async function createWebhookQueue(
  slice: WebhookQueueSlice,
  context: StoreContext,
): Promise<WebhookQueue> {
  const { maxEntries } = slice;
  return await openStore<WebhookQueue>(slice, context, {
    memory: (common) => new MemoryWebhookQueue({ ...common, maxEntries }),
    // Waits (2 s at most) for the first connection; never rejects for an unreachable Redis.
    redis: (common) => createRedisWebhookQueue({ ...common, maxEntries }),
    kv: (common) => new KvWebhookQueue({ ...common, maxEntries }),
  });
}
