/**
 * The one place the server's services are built from configuration: each is
 * given only its section of {@linkcode Config} (or what a caller injected in
 * its stead), in dependency order, and {@linkcode closeServices} releases
 * them in the reverse.
 *
 * @module
 */
import type { AuditSink } from "../audit.ts";
import { logtapeAuditSink } from "../audit.ts";
import type { TokenVerifier } from "../core/auth.ts";
import { createJwtVerifier, withVerifiedTokenCache } from "../core/auth.ts";
import { composeBroker } from "../broker/from_config.ts";
import { isPerIsolate } from "../broker/table.ts";
import type { Broker } from "../broker/types.ts";
import { MemoryBus } from "../bus/memory.ts";
import type { Bus } from "../bus/types.ts";
import type { Clock, TimerId } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { CloseCode } from "../codes.ts";
import type { Config } from "../config.ts";
import type { HistoryReader } from "../core/history_reader.ts";
import type { Metrics } from "../metrics.ts";
import type { PresenceTracker } from "../core/presence/mod.ts";
import type { RateLimiter } from "../core/rate_limiter.ts";
import { Revocations } from "../core/revocations.ts";
import { RoomPolicy } from "../core/room_policy.ts";
import type { RoomManager } from "../core/rooms.ts";
import { MemoryHistoryStore } from "../store/history/memory.ts";
import type { HistoryStore } from "../store/history/types.ts";
import { MemoryPresenceStore } from "../store/presence/memory.ts";
import type { PresenceStore } from "../store/presence/types.ts";
import { MemoryRevocationStore } from "../store/revocations/memory.ts";
import type { RevocationStore } from "../store/revocations/types.ts";
import { createTicketStore, ticketStoreSlice } from "../store/tickets/from_config.ts";
import type { TicketStore } from "../store/tickets/types.ts";
import { WriteBatcher } from "../core/write_batcher.ts";
import { type ApiPublisher, apiPublisher, LiveDedupe } from "../core/live_dedupe.ts";
import { Connections } from "./connections.ts";
import { errorMessage } from "../errors.ts";
import type { WebhookQueue } from "../store/webhooks/types.ts";
import { type HookServices, openHooks } from "../hooks/mod.ts";
import {
  loadApps,
  openPusher,
  type PusherObserver,
  type PusherService,
  pusherWebhookObserver,
  pusherWebhooks,
} from "../protocols/pusher/mod.ts";
import { openWebhooks, type Webhooks } from "../webhooks/from_config.ts";
import { openSharedLimits } from "./_shared_limits.ts";
import type { SharedCounts, SharedLimits } from "../core/shared_limits.ts";

import {
  buildLimiters,
  buildMetrics,
  composeRooms,
  foreign,
  startOccupancy,
  startSweeper,
  webhookUsers,
} from "./_compose_parts.ts";
/** Options for `createServer`. Only `config` is required. */
export interface ServerOptions {
  /** Validated configuration (see `loadConfig`). */
  config: Config;
  /** Token verifier. @default jose with the config's keys, behind a verified-token cache */
  verifier?: TokenVerifier;
  /**
   * Transport to other instances; with the history store it makes the broker
   * (lib/broker/table.ts). @default an isolated in-memory bus
   */
  bus?: Bus;
  /**
   * Where history rooms' messages are kept, or a function that makes it;
   * closed with the server. The function is called only when some room can
   * have history (`HISTORY_SIZE` > 0 or a policy rule), so a server without
   * history rooms opens no store connection.
   * @default a per-isolate memory store bounded by `HISTORY_MAX_BYTES`
   */
  history?: HistoryStore | (() => HistoryStore | Promise<HistoryStore>);
  /**
   * Where revocations are kept, or a function that makes it (called once,
   * at start); closed with the server.
   * @default a per-process memory store
   */
  revocationStore?: RevocationStore | (() => RevocationStore | Promise<RevocationStore>);
  /**
   * Where `/ticket` tickets wait to be redeemed; closed with the server.
   * @default the store `STORE` implies (KV for `STORE=kv`, else this isolate's memory)
   */
  tickets?: TicketStore;
  /**
   * Where presence entries live, or a function that makes it; closed with
   * the server. Called only when some room can track presence (`PRESENCE` or
   * a policy rule). @default a per-isolate memory store
   */
  presence?: PresenceStore | (() => PresenceStore | Promise<PresenceStore>);
  /** Room policy. @default the file named by `ROOM_POLICY`, or none */
  policy?: RoomPolicy;
  /** @default systemClock */
  clock?: Clock;
  /** Where audit records go. @default LogTape category ["realtime","audit"] */
  audit?: AuditSink;
  /** Dev mode's HMAC secret; generated when the config has no key. */
  devSecret?: Uint8Array;
  /**
   * Told of Pusher client events and cache misses, besides the apps'
   * webhooks. @default none
   */
  pusherObserver?: PusherObserver;
  /** Extra routes served before the 404 (the client module, the demo page). */
  routes?: Record<string, (req: Request) => Response | Promise<Response>>;
  /**
   * Where webhook events wait; closed with the server. Opened only when a
   * `WEBHOOK_URL` is set. @default the queue `STORE` implies
   */
  webhookQueue?: WebhookQueue;
}

/** Everything the server runs on, built once by {@linkcode composeServices}. */
export interface Services {
  readonly clock: Clock;
  readonly audit: AuditSink;
  readonly devSecret: Uint8Array | undefined;
  readonly verifier: TokenVerifier;
  readonly revocations: Revocations;
  readonly policy: RoomPolicy;
  /** Room traffic: the bus and the history store, one strategy (lib/broker/). */
  readonly broker: Broker;
  readonly historyStore: HistoryStore | undefined;
  readonly presenceStore: PresenceStore | undefined;
  readonly rooms: RoomManager;
  /** Publishes for callers without a socket, with their idempotency keys (every room). */
  readonly apiPublish: ApiPublisher;
  readonly presence: PresenceTracker | undefined;
  readonly historyReader: HistoryReader;
  /** Per-user message rate. */
  readonly limiter: RateLimiter;
  /** Per-IP handshakes (and ticket requests). */
  readonly handshakeLimiter: RateLimiter;
  /** The limits store and whether it answers (`LIMITS_STORE`); undefined: per-isolate limits. */
  readonly sharedLimits: SharedLimits | undefined;
  /** Cluster-wide connection caps (`LIMITS_STORE`); undefined: per-isolate caps. */
  readonly caps: SharedCounts | undefined;
  readonly tickets: TicketStore;
  readonly metrics: Metrics;
  readonly batcher: WriteBatcher;
  readonly connections: Connections;
  /** The timer that sweeps the limiters, tickets and revocations. */
  readonly sweeper: TimerId;
  /** Webhook delivery, when a `WEBHOOK_URL` is set. */
  readonly webhooks: Webhooks | undefined;
  /** The synchronous hooks whose URL is set (`HOOK_*_URL`). */
  readonly hooks: HookServices;
  /** The Pusher apps and channels; undefined without any app (its endpoints answer 404). */
  readonly pusher: PusherService | undefined;
  /** Told of Pusher client events and cache misses: the apps' webhooks, then the caller's. */
  readonly pusherObserver: PusherObserver | undefined;
}

async function loadPolicy(path: string | undefined): Promise<RoomPolicy> {
  if (path === undefined) return new RoomPolicy();
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new TypeError(`ROOM_POLICY: cannot read ${path}: ${errorMessage(err)}`);
  }
  try {
    return RoomPolicy.parse(text);
  } catch (err) {
    throw new TypeError(`ROOM_POLICY: ${errorMessage(err)}`);
  }
}

/** The given store; else, when wanted, the factory's or the default one. */
async function openStore<T extends object>(
  given: T | (() => T | Promise<T>) | undefined,
  wanted: boolean,
  fallback: () => T,
): Promise<T | undefined> {
  if (typeof given === "object") return given;
  if (!wanted) return undefined;
  return given === undefined ? fallback() : await given();
}

/** Revocations, and the verifier that consults them before any cache. */
async function openAuth(
  options: ServerOptions,
  clock: Clock,
  devSecret: Uint8Array | undefined,
): Promise<{ revocations: Revocations; verifier: TokenVerifier }> {
  const { auth, limits } = options.config;
  const store = typeof options.revocationStore === "function"
    ? await options.revocationStore()
    : options.revocationStore ?? new MemoryRevocationStore({ clock });
  const revocations = new Revocations({
    store,
    // A per-process store mirrors this process; a shared one is loaded and re-read.
    mode: isPerIsolate(store.kind) ? "mirror" : "sync",
    clock,
    syncIntervalMs: auth.revocations.syncIntervalMs,
  });
  // Outside any cache: a cached verification never lets a revoked token through.
  const verifier = revocations.guard(
    options.verifier ?? withVerifiedTokenCache(
      await createJwtVerifier(auth.jwt, {
        clock,
        maxInfoDepth: limits.maxPayloadDepth,
        ...(devSecret ? { devSecret } : {}),
      }),
      { clock },
    ),
  );
  return { revocations, verifier };
}

/** The ticket store `STORE` implies, its faults audited. */
function openTickets(config: Config, clock: Clock, audit: AuditSink): Promise<TicketStore> {
  return createTicketStore(ticketStoreSlice(config), {
    clock,
    onError: (err) => audit.record("bus_error", { error: `tickets: ${err.message}` }),
  });
}

/** The stores of history and presence rooms, when some room can have them. */
async function openRoomStores(
  options: ServerOptions,
  policy: RoomPolicy,
  clock: Clock,
  pusherWants: boolean,
): Promise<Pick<Services, "historyStore" | "presenceStore">> {
  const { config } = options;
  // Pusher's cache channels keep their last event; Pusher channels track presence.
  const historyStore = await openStore(
    options.history,
    config.history.size > 0 || policy.hasHistoryRules || pusherWants,
    () => new MemoryHistoryStore({ clock, maxBytes: config.history.maxBytes }),
  );
  const presenceStore = await openStore(
    options.presence,
    config.presence.enabled || policy.hasPresenceRules || pusherWants,
    () => new MemoryPresenceStore({ ttlMs: config.presence.ttlMs, clock }),
  );
  return { historyStore, presenceStore };
}

/** The broker's error sink: a history failure becomes a `bus_error` audit record. */
function brokerErrors(audit: AuditSink): { onError: (err: unknown, room: string) => void } {
  return {
    onError: (err, room) =>
      audit.record("bus_error", { room, error: `history: ${errorMessage(err)}` }),
  };
}

/** The Pusher observer: the app's own, plus Pusher's webhooks when there are any. */
function pusherObserverOf(
  pusherHooks: ReturnType<typeof pusherWebhooks>,
  webhooks: Services["webhooks"],
  own: ServerOptions["pusherObserver"],
): ServerOptions["pusherObserver"] {
  return pusherHooks === undefined || webhooks === undefined
    ? own
    : pusherWebhookObserver((event) => webhooks.engine.emit(event), own);
}

/**
 * Builds every service. Keys are imported and the room policy is loaded
 * here, so configuration mistakes surface at start-up, not at the first
 * connection. Stores nobody can use (no room with history or presence) are
 * not opened.
 */
export async function composeServices(options: ServerOptions): Promise<Services> {
  const { config, clock = systemClock, audit = logtapeAuditSink() } = options;
  const devSecret = config.server.devMode
    ? options.devSecret ?? crypto.getRandomValues(new Uint8Array(32))
    : undefined;
  const { revocations, verifier } = await openAuth(options, clock, devSecret);
  const policy = options.policy ?? await loadPolicy(config.auth.roomPolicyPath);
  const pusherApps = await loadApps(config.pusher);
  const stores = await openRoomStores(options, policy, clock, pusherApps.size > 0);
  const { historyStore, presenceStore } = stores;
  const broker = composeBroker(options.bus ?? new MemoryBus(), historyStore, brokerErrors(audit));
  // With a shared store every Pusher room is held there: the API's channel list is cluster-wide.
  const pusherHooks = pusherWebhooks(pusherApps, { everyRoom: config.store.kind !== "memory" });
  const webhooks = await openWebhooks(config, {
    clock,
    audit,
    policy,
    bus: broker,
    queue: options.webhookQueue,
    foreign,
    protocols: pusherHooks === undefined ? [] : [pusherHooks],
  });
  const connections = new Connections(webhookUsers(webhooks));
  const { rooms, presence, historyReader } = composeRooms(config, {
    broker,
    historyStore,
    presenceStore,
    policy,
    clock,
    audit,
    webhooks,
  });
  const shared = await openSharedLimits(config, { clock, audit, node: broker.instanceId });
  const { limiter, handshakeLimiter } = buildLimiters(config, clock, shared?.limits);
  const tickets = options.tickets ?? await openTickets(config, clock, audit);
  const metrics = buildMetrics({ connections, rooms, broker, historyStore, revocations, webhooks });
  if (shared !== undefined) metrics.watchLimits(() => shared.limits.up, () => shared.limits.calls);
  const hooks = openHooks(config.hooks, { clock, audit, metrics, policy, limits: config.limits });
  await revocations.start({ bus: broker, rooms, sessions: connections.sessions });
  const pusher = await openPusher(pusherApps, {
    rooms,
    bus: broker,
    presenceStore,
    occupancy: webhooks?.occupancyStore?.shared === true ? webhooks.occupancyStore : undefined,
  });
  await startOccupancy(webhooks, rooms);
  const sweeper = startSweeper(clock, [limiter, handshakeLimiter, tickets, revocations]);
  return {
    clock,
    audit,
    devSecret,
    verifier,
    revocations,
    policy,
    broker,
    historyStore,
    presenceStore,
    rooms,
    apiPublish: apiPublisher(
      rooms,
      new LiveDedupe({ windowMs: config.history.dedupeWindowMs, clock }),
    ),
    presence,
    historyReader,
    limiter,
    handshakeLimiter,
    sharedLimits: shared?.limits,
    caps: shared?.caps,
    tickets,
    metrics,
    batcher: new WriteBatcher(),
    connections,
    sweeper,
    webhooks,
    hooks,
    pusher,
    pusherObserver: pusherObserverOf(pusherHooks, webhooks, options.pusherObserver),
  };
}

/**
 * Releases every service, in the reverse of their dependencies: open
 * sessions are closed with 1001, presence says its last leaves before the bus
 * goes, the stores close last.
 */
export async function closeServices(services: Services): Promise<void> {
  const { clock, batcher, connections, presence, presenceStore } = services;
  clock.clearInterval(services.sweeper);
  batcher.close();
  for (const session of [...connections.sessions]) {
    session.close(CloseCode.GoingAway, "server going away");
  }
  // Before the bus: the last leaves are announced and our entries removed from the store.
  await presence?.close();
  await presenceStore?.close();
  // After the sessions and presence said their last: their events reach the queue first.
  await services.webhooks?.close();
  await services.caps?.close();
  await services.sharedLimits?.store.close();
  await services.revocations.close();
  await services.tickets.close();
  // The bus, then the history store.
  await services.broker.close();
}
