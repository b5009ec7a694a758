/**
 * The server as a library: {@linkcode createServer} composes the services
 * from configuration (lib/http/compose.ts), puts the `/ws` handshake gate
 * (lib/http/gate.ts) and the other routes in one table (lib/http/route_table.ts)
 * behind the router (lib/http/router.ts), and owns the lifecycle: draining,
 * shutdown, close. It returns a fetch handler, so the same code runs under
 * `Deno.serve`, the node:http front door, `deno serve --parallel` and in tests.
 *
 * @module
 */
import { denoUpgrade, type Upgrader } from "./edge/types.ts";
import { CloseCode } from "./codes.ts";
import { encodeRoomMessage } from "./protocols/native/protocol.ts";
import type { Metrics } from "./metrics.ts";
import type { PresenceTracker } from "./core/presence/mod.ts";
import type { PublishOutcome } from "./core/rooms.ts";
import {
  closeServices,
  composeServices,
  type ServerOptions,
  type Services,
} from "./http/compose.ts";
import { HandshakeGate } from "./http/gate.ts";
import type { PusherService } from "./protocols/pusher/mod.ts";
import { pusherFrontDoor, sessionContext } from "./http/front_doors.ts";
import { closeHooks } from "./hooks/mod.ts";
import { type Health, healthReport } from "./http/health.ts";
import { routeTable } from "./http/route_table.ts";
import { createRouter } from "./http/router.ts";
import { errorMessage } from "./errors.ts";

export type { ServerOptions } from "./http/compose.ts";
export type { Health } from "./http/health.ts";

/** Counts of everything the server holds, for tests and `/healthz`. */
export interface ServerStats {
  connections: number;
  rooms: number;
  users: number;
  limiterKeys: number;
  handshakeLimiterKeys: number;
  tickets: number;
}

/** Options for {@linkcode RealtimeServer.shutdown}. */
export interface ShutdownOptions {
  /** How long to wait for buffered frames to drain. @default config.server.shutdownGraceMs */
  graceMs?: number;
  /**
   * Close with 1012 "service restart" (the instance is being replaced, as in
   * a Deno Deploy eviction: reconnect at once) instead of 1001 "server going
   * away". Each protocol maps the code to its own (Pusher: 4200).
   *
   * @default {false}
   */
  restart?: boolean;
}

/** A running server: a fetch handler plus lifecycle. */
export interface RealtimeServer {
  /**
   * The fetch handler for `Deno.serve`; a front door that owns the socket
   * (lib/edge/node_server.ts) passes its own `upgrade`.
   */
  handler(
    req: Request,
    info?: Deno.ServeHandlerInfo<Deno.Addr>,
    upgrade?: Upgrader,
  ): Promise<Response>;
  /** This isolate's id (also in `welcome`). */
  readonly instanceId: string;
  /** Dev mode's secret, when in dev mode (to mint tokens on the console). */
  readonly devSecret: Uint8Array | undefined;
  /**
   * Publishes to a room as a backend would (`from` defaults to `"server"`).
   * Resolves to the local recipients and, in a history room, the message's
   * position once it is stored.
   *
   * @throws {MessageTooLargeError} (a `RangeError`) when the bus cannot carry it
   * @throws {StoreUnavailableError} in a history room whose store is down
   */
  publish(
    room: string,
    payload: unknown,
    options?: { from?: string; idempotencyKey?: string },
  ): Promise<PublishOutcome>;
  /** Current counts. */
  stats(): ServerStats;
  /** Presence rooms, when some room can track presence. */
  readonly presence: PresenceTracker | undefined;
  /**
   * The Pusher apps and channels (trigger, channel state, users, terminate),
   * when the server has Pusher apps: what the Pusher HTTP API drives.
   */
  readonly pusher: PusherService | undefined;
  /** Liveness report. */
  health(): Health;
  /** Prometheus registry wrapper. */
  readonly metrics: Metrics;
  /**
   * Graceful shutdown: refuse new work with 503, close every socket with 1001
   * "server going away" (1012 "service restart" with `restart`), wait up to
   * the grace period for buffered frames.
   */
  shutdown(options?: ShutdownOptions): Promise<void>;
  /** Releases timers and the bus; call after `shutdown`. Idempotent. */
  close(): Promise<void>;
}

/** The route table behind the router, and the health report it shares with the admin feed. */
function buildHandler(
  options: ServerOptions,
  services: Services,
  lifecycle: { draining(): boolean; shutdownSignal: AbortSignal },
): { handler: RealtimeServer["handler"]; health: () => Health; close(): void } {
  const { config, routes: extra = {} } = options;
  const { draining, shutdownSignal } = lifecycle;
  const health = healthReport({
    ...services,
    bus: services.broker,
    revocationStore: services.revocations.store,
    connections: () => services.connections.size,
    storeKind: config.store.kind,
    tls: config.tls !== undefined,
  });
  const gate = new HandshakeGate({
    ...services,
    auth: config.auth,
    limits: config.limits,
    heartbeatMs: config.server.heartbeatMs,
    session: sessionContext(services, config),
    draining,
  });
  const pusher = pusherFrontDoor(services, options, draining);
  const handler = createRouter(
    routeTable({
      config,
      services,
      health,
      handshake: gate.handle,
      ...(pusher === undefined ? {} : { pusherHandshake: pusher.handle }),
      shutdownSignal,
      extra,
    }),
    {
      draining,
      trustProxy: config.server.trustProxy,
      defaultUpgrade: denoUpgrade,
      onError: (err, path) =>
        services.audit.record("internal_error", {
          error: errorMessage(err),
          path,
        }),
    },
  );
  return { handler, health, close: () => pusher?.close() };
}

/**
 * Builds the server. Keys are imported and the room policy is loaded here,
 * so configuration mistakes surface at start-up, not at the first connection.
 *
 * @example
 * ```ts
 * import { createServer } from "./server.ts";
 * import { loadConfig } from "./config.ts";
 * const server = await createServer({ config: loadConfig({ JWT_SECRET: "a".repeat(32), PORT: "0" }) });
 * const http = Deno.serve({ port: 0, onListen() {} }, server.handler);
 * // ...
 * await server.shutdown();
 * await http.shutdown();
 * await server.close();
 * ```
 */
export async function createServer(options: ServerOptions): Promise<RealtimeServer> {
  const { config } = options;
  const services = await composeServices(options);
  const { clock, rooms, connections } = services;
  let draining = false;
  let closed = false;
  // Aborts API bodies still arriving, so a stuck client cannot hold up shutdown.
  const shutdownController = new AbortController();
  const { handler, health, close: closeHandler } = buildHandler(options, services, {
    draining: () => draining,
    shutdownSignal: shutdownController.signal,
  });
  return {
    handler,
    instanceId: services.broker.instanceId,
    devSecret: services.devSecret,
    metrics: services.metrics,
    presence: services.presence,
    pusher: services.pusher,
    async publish(room, payload, publishOptions = {}) {
      const { from = "server", idempotencyKey } = publishOptions;
      const frame = encodeRoomMessage(room, JSON.stringify(payload), from, clock.now());
      return await services.apiPublish(room, frame, { from, idempotencyKey });
    },
    stats: () => ({
      connections: connections.size,
      rooms: rooms.size,
      users: connections.users,
      limiterKeys: services.limiter.size,
      handshakeLimiterKeys: services.handshakeLimiter.size,
      tickets: services.tickets.size,
    }),
    health,
    async shutdown(shutdownOptions = {}) {
      const { graceMs = config.server.shutdownGraceMs, restart = false } = shutdownOptions;
      draining = true;
      shutdownController.abort();
      const open = [...connections.sessions];
      const [code, reason] = restart
        ? [CloseCode.ServiceRestart, "service restart"]
        : [CloseCode.GoingAway, "server going away"];
      for (const session of open) session.close(code, reason);
      // Real time, not the injected clock: this waits for real sockets.
      const deadline = performance.now() + graceMs;
      while (performance.now() < deadline && open.some((s) => !s.socketClosed)) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      draining = true;
      shutdownController.abort();
      closeHooks(services.hooks);
      await closeServices(services);
      closeHandler();
    },
  };
}
