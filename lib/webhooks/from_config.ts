/**
 * The native webhooks built from the configuration: the queue and the engine
 * (lib/webhooks/engine.ts), the events of messages and closes
 * (`native.ts`), and the cluster-wide occupancy events (`occupancy.ts`) with
 * their store. Nothing is opened unless a `WEBHOOK_URL` is set; the
 * occupancy store only when one of its events is wanted.
 *
 * @module
 */
import type { AuditSink } from "../audit.ts";
import type { SystemChannel } from "../bus/types.ts";
import type { Clock } from "../clock.ts";
import type { Config } from "../config.ts";
import type { RoomPolicy } from "../core/room_policy.ts";
import { errorMessage } from "../errors.ts";
import { createOccupancyStore } from "../store/occupancy/from_config.ts";
import { storeSliceOf } from "../store/_slice.ts";
import type { OccupancyStore } from "../store/occupancy/types.ts";
import { createWebhookQueue, webhookQueueSlice } from "../store/webhooks/from_config.ts";
import { MemoryWebhookQueue } from "../store/webhooks/memory.ts";
import type { WebhookQueue } from "../store/webhooks/types.ts";
import { WebhookEngine } from "./engine.ts";
import { nativeSinks, NativeWebhooks } from "./native.ts";
import { type OccupancyProtocol, OccupancyWebhooks } from "./occupancy.ts";
import type { WebhookSink } from "./sinks.ts";

/** The webhook services of one server. */
export interface Webhooks {
  readonly queue: WebhookQueue;
  readonly engine: WebhookEngine;
  /** `message_published` and `connection_closed`. */
  readonly native: NativeWebhooks;
  /** Occupied/vacated, online/offline, presence joined/left, when any is wanted. */
  readonly occupancy: OccupancyWebhooks | undefined;
  /** Where occupancy is decided (and listed, for the Pusher API), when it is followed. */
  readonly occupancyStore: OccupancyStore | undefined;
  /**
   * Releases everything in order: occupancy says its last (after the
   * sessions closed), the engine hands every event to the queue, then the
   * stores close.
   */
  close(): Promise<void>;
}

/** Another protocol's webhooks (Pusher's apps): its receivers and its occupancy events. */
export interface ProtocolWebhooks {
  /** Its receivers, delivered by the same engine and queue. */
  readonly sinks: readonly WebhookSink[];
  /** Its share of the cluster-wide occupancy events, when it wants any. */
  readonly occupancy?: OccupancyProtocol | undefined;
}

/** What {@linkcode openWebhooks} is given besides the configuration. */
export interface WebhookDeps {
  clock: Clock;
  audit: AuditSink;
  policy: RoomPolicy;
  bus: SystemChannel;
  /** A queue to use instead of the one `STORE` implies (closed with the rest). */
  queue?: WebhookQueue | undefined;
  /**
   * Rooms and user ids another protocol owns (Pusher's `~` namespace: its
   * channels and its anonymous sockets), which the native events skip.
   * @default none
   */
  foreign?: (name: string) => boolean;
  /** Other protocols' webhooks. @default none */
  protocols?: readonly ProtocolWebhooks[];
}

/**
 * The webhook services the configuration asks for, or undefined without a
 * `WEBHOOK_URL` or another protocol's receiver.
 *
 * @example
 * ```ts ignore
 * const webhooks = await openWebhooks(config, { clock, audit, policy, bus });
 * await webhooks?.close();
 * ```
 */
export async function openWebhooks(
  config: Pick<Config, "webhooks" | "store" | "presence">,
  deps: WebhookDeps,
): Promise<Webhooks | undefined> {
  const { clock, audit, policy, bus, foreign = () => false, protocols = [] } = deps;
  const sinks = [...nativeSinks(config.webhooks), ...protocols.flatMap((p) => p.sinks)];
  const shares = protocols.flatMap((p) => p.occupancy === undefined ? [] : [p.occupancy]);
  if (sinks.length === 0 && shares.length === 0) return undefined;
  const onError = (err: Error) =>
    audit.record("bus_error", { error: `webhooks: ${errorMessage(err)}` });
  // Occupancy followed for another purpose (the Pusher channel list) queues nothing.
  const queue = deps.queue ??
    (sinks.length === 0
      ? new MemoryWebhookQueue()
      : await createWebhookQueue(webhookQueueSlice(config), { clock, onError }));
  const engine = new WebhookEngine({
    queue,
    sinks,
    timeoutMs: config.webhooks.timeoutMs,
    clock,
    audit,
    onError,
  });
  const native = new NativeWebhooks({ engine, policy, foreign });
  let store: OccupancyStore | undefined;
  let occupancy: OccupancyWebhooks | undefined;
  if (OccupancyWebhooks.wanted(engine) || shares.length > 0) {
    store = await createOccupancyStore(storeSliceOf(config), { clock, onError });
    occupancy = new OccupancyWebhooks({
      store,
      engine,
      bus,
      presenceFor: (room) => policy.presenceFor(room, config.presence.enabled),
      foreign,
      protocols: shares,
      ttlMs: config.presence.ttlMs,
      clock,
      onError,
    });
  }
  return {
    queue,
    engine,
    native,
    occupancy,
    occupancyStore: store,
    async close() {
      await occupancy?.close();
      await store?.close();
      await engine.close();
      await queue.close();
    },
  };
}
