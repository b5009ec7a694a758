/**
 * The parts lib/http/compose.ts assembles: rooms, presence and the history
 * reader over the broker, the webhooks' hooks into them, metrics, limiters
 * and the sweeper. Kept apart so the composition reads as one list.
 *
 * @module
 */
import { isPerIsolate } from "../broker/table.ts";
import type { Clock, TimerId } from "../clock.ts";
import type { Config, HistoryConfig, PresenceConfig } from "../config.ts";
import { HistoryReader } from "../core/history_reader.ts";
import { Metrics } from "../metrics.ts";
import { PRESENCE_KIND, PresenceTracker } from "../core/presence/mod.ts";
import { RateLimiter, type RateLimiterOptions } from "../core/rate_limiter.ts";
import { SharedRateLimiter } from "../core/shared_rate_limiter.ts";
import type { SharedLimits } from "../core/shared_limits.ts";
import type { RoomPolicy } from "../core/room_policy.ts";
import { RoomManager, type RoomManagerOptions } from "../core/rooms.ts";
import type { HistoryLimits, HistoryStore } from "../store/history/types.ts";
import type { PresenceStore } from "../store/presence/types.ts";
import type { ConnectionsOptions } from "./connections.ts";
import { errorMessage } from "../errors.ts";
import { isPusherRoom, pusherHistoryLimits } from "../protocols/pusher/mod.ts";
import { PUSHER_ROOM_PREFIX } from "../protocols/pusher/channel_names.ts";
import type { Webhooks } from "../webhooks/from_config.ts";
import { OCCUPANCY_KIND } from "../webhooks/occupancy.ts";

import type { Services } from "./compose.ts";

/** What {@linkcode buildRooms} needs. */
interface RoomDeps extends Pick<Services, "broker" | "clock" | "audit"> {
  history: Pick<HistoryConfig, "dedupeWindowMs">;
  /** `MAX_BUFFERED_BYTES`: live frames held behind a replay count as unread data. */
  maxHeldBytes: number;
  limitsFor(room: string): HistoryLimits | null;
  /** Told of each message published (`message_published`), when webhooks are on. */
  webhooks: Webhooks | undefined;
}

/** Pusher's rooms and anonymous users (its `~` namespace): not the native webhooks' business. */
export const foreign = (name: string): boolean => name.startsWith(PUSHER_ROOM_PREFIX);

/** A room's history limits: a Pusher cache channel's, or the policy's (`null`: none). */
export function historyLimitsFor(
  policy: RoomPolicy,
  defaults: HistoryLimits | null,
): (room: string) => HistoryLimits | null {
  return (room) => {
    // A Pusher room keeps history only as a cache channel (`null` for the others).
    const pusher = pusherHistoryLimits(room);
    return pusher !== undefined ? pusher : policy.historyFor(room, defaults);
  };
}

/** What the connections tell the webhooks: users coming and going (`user_online`/`user_offline`). */
export function webhookUsers(webhooks: Webhooks | undefined): ConnectionsOptions {
  const occupancy = webhooks?.occupancy;
  if (occupancy === undefined) return {};
  return { onUser: (userId, online) => occupancy.user(userId, online) };
}

/** Starts the occupancy webhooks' heartbeats, heard through the rooms' system envelopes. */
export async function startOccupancy(
  webhooks: Webhooks | undefined,
  rooms: RoomManager,
): Promise<void> {
  const occupancy = webhooks?.occupancy;
  if (occupancy === undefined) return;
  rooms.onSystem(OCCUPANCY_KIND, (envelope) => occupancy.heard(envelope));
  await occupancy.start();
}

/** What the rooms tell the webhooks: messages published, members coming and going. */
export function webhookHooks(
  webhooks: Webhooks | undefined,
): Pick<RoomManagerOptions, "onPublished" | "onMembership"> {
  if (webhooks === undefined) return {};
  const { native, occupancy } = webhooks;
  return {
    onPublished: (room, frame) => native.published(room, frame),
    ...(occupancy === undefined ? {} : { onMembership: (change) => occupancy.membership(change) }),
  };
}

/** Rooms over the broker, with history when it has a store. */
export function buildRooms(deps: RoomDeps): RoomManager {
  const { broker, clock, audit } = deps;
  return new RoomManager({
    broker,
    clock,
    ...(broker.history === undefined ? {} : {
      history: {
        limitsFor: deps.limitsFor,
        dedupeWindowMs: deps.history.dedupeWindowMs,
        // Live frames queued behind a replay are unread data too.
        maxHeldBytes: deps.maxHeldBytes,
      },
    }),
    onBusError: (err, room) => audit.record("bus_error", { room, error: errorMessage(err) }),
    onHistoryGap: (room, missing) => audit.record("history_gap", { room, missing }),
    onHistoryError: (err, room) =>
      audit.record("bus_error", { room, error: `history: ${errorMessage(err)}` }),
    ...webhookHooks(deps.webhooks),
  });
}

/** Presence rooms, when a presence store is open; fed by the rooms' system envelopes. */
export function buildPresence(
  section: PresenceConfig,
  services: Pick<Services, "broker" | "rooms" | "presenceStore" | "policy" | "clock" | "audit">,
): PresenceTracker | undefined {
  const { broker, rooms, presenceStore, policy, clock, audit } = services;
  if (presenceStore === undefined) return undefined;
  const presence = new PresenceTracker({
    bus: broker,
    store: presenceStore,
    // Per-isolate entries are told by gossip; a shared store is read and reconciled.
    strategy: isPerIsolate(presenceStore.kind) ? "gossip" : "store",
    // Every Pusher channel is tracked (its occupancy for the Pusher API), whatever `PRESENCE` says.
    enabled: (room) => isPusherRoom(room) || policy.presenceFor(room, section.enabled),
    diffMs: section.diffMs,
    maxMembers: section.maxMembers,
    clock,
    onError: (err) => audit.record("bus_error", { error: `presence: ${errorMessage(err)}` }),
  });
  rooms.onSystem(PRESENCE_KIND, (envelope) => presence.receive(envelope));
  return presence;
}

export function buildMetrics(
  services: Pick<
    Services,
    "connections" | "rooms" | "broker" | "historyStore" | "revocations" | "webhooks"
  >,
): Metrics {
  const { connections, rooms, broker: bus, historyStore, revocations, webhooks } = services;
  const metrics = new Metrics({
    connections: () => connections.size,
    rooms: () => rooms.size,
    busGaps: () => bus.health().gaps,
    busDropped: () => bus.health().dropped,
    busUp: () => bus.health().status === "ok",
    historyGaps: () => rooms.historyStats.gaps,
    historyUp: () => historyStore === undefined || historyStore.health().status === "ok",
    revocationsActive: () => revocations.active,
    revokedCloses: () => revocations.closedTotal,
  });
  if (webhooks !== undefined) metrics.watchWebhooks(() => webhooks.engine.stats());
  return metrics;
}

/**
 * The per-user message limiter and the per-IP handshake limiter: this
 * isolate's own, or leasing from the cluster's buckets when `shared`.
 */
export function buildLimiters(
  config: Pick<Config, "limits" | "sharedLimits">,
  clock: Clock,
  shared: SharedLimits | undefined,
): Pick<Services, "limiter" | "handshakeLimiter"> {
  const { rate, handshakesPerMinutePerIp } = config.limits;
  const lease = config.sharedLimits.lease;
  const make = (options: RateLimiterOptions, space: string): RateLimiter =>
    shared === undefined
      ? new RateLimiter(options)
      : new SharedRateLimiter({ ...options, shared, space, ...(lease ? { lease } : {}) });
  return {
    limiter: make({ capacity: rate.capacity, refillPerSec: rate.refillPerSec, clock }, "m"),
    handshakeLimiter: make({
      capacity: handshakesPerMinutePerIp,
      refillPerSec: handshakesPerMinutePerIp / 60,
      maxKeys: 100_000,
      clock,
    }, "h"),
  };
}

/** What {@linkcode composeRooms} builds on. */
export interface RoomsDeps extends Pick<Services, "broker" | "clock" | "audit" | "policy"> {
  historyStore: HistoryStore | undefined;
  presenceStore: PresenceStore | undefined;
  webhooks: Webhooks | undefined;
}

/** Rooms over the broker, presence over the rooms, and the history reader. */
export function composeRooms(
  config: Config,
  deps: RoomsDeps,
): Pick<Services, "rooms" | "presence" | "historyReader"> {
  const { broker, historyStore, presenceStore, policy, clock, audit, webhooks } = deps;
  const { history } = config;
  const defaultHistory = history.size > 0 ? { size: history.size, ttlMs: history.ttlMs } : null;
  const limitsFor = historyLimitsFor(policy, defaultHistory);
  const maxHeldBytes = config.limits.maxBufferedBytes;
  const rooms = buildRooms({ broker, clock, audit, history, maxHeldBytes, limitsFor, webhooks });
  const presence = buildPresence(config.presence, {
    broker,
    rooms,
    presenceStore,
    policy,
    clock,
    audit,
  });
  const historyReader = new HistoryReader({
    ...(historyStore === undefined ? {} : { store: historyStore }),
    limitsFor,
    pageBytes: history.pageBytes,
  });
  return { rooms, presence, historyReader };
}

const SWEEP_INTERVAL_MS = 30_000;

/** Sweeps the limiters, tickets and revocations of their expired keys every 30 s. */
export function startSweeper(
  clock: Clock,
  sweepable: readonly { sweep?(): void }[],
): TimerId {
  return clock.setInterval(() => {
    for (const part of sweepable) part.sweep?.();
  }, SWEEP_INTERVAL_MS);
}
