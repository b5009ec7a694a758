/**
 * The HTTP side of the server: routes, the `/ws` handshake (every check before
 * the upgrade), and ownership of the shared services (rooms, limiters,
 * tickets, metrics). `createServer` returns a fetch handler, so the same code
 * runs under `Deno.serve`, `deno serve --parallel` and in tests.
 *
 * @module
 */
import { denoUpgrade, type Upgraded, type Upgrader } from "./edge/types.ts";
import type { AuditSink } from "./audit.ts";
import { logtapeAuditSink } from "./audit.ts";
import type { Principal, TokenVerifier } from "./auth.ts";
import { createJwtVerifier, withVerifiedTokenCache } from "./auth.ts";
import { MemoryBus } from "./bus/memory.ts";
import type { Bus, BusHealth } from "./bus/types.ts";
import type { Clock, TimerId } from "./clock.ts";
import { systemClock } from "./clock.ts";
import { CloseCode, RefusalReason } from "./codes.ts";
import type { AuthFailureReason } from "./codes.ts";
import type { Config } from "./config.ts";
import {
  BEARER_PROTOCOL,
  clientAddress,
  cookieOriginAllowed,
  findCredential,
  offeredProtocols,
  originAllowed,
  WEBSOCKET_VERSION,
  wellFormedWebSocketHandshake,
} from "./handshake.ts";
import { apiError, json, refuse } from "./http.ts";
import { Counters, Metrics } from "./metrics.ts";
import { encodeRoomMessage } from "./protocol.ts";
import { RateLimiter } from "./rate_limiter.ts";
import { Revocations } from "./revocations.ts";
import { RoomPolicy } from "./room_policy.ts";
import { type PublishOutcome, RoomManager } from "./rooms.ts";
import { HistoryReader } from "./history_reader.ts";
import { apiDedupeKey } from "./dedupe.ts";
import { MemoryHistoryStore } from "./store/history/memory.ts";
import type { HistoryStore, StoreHealth } from "./store/history/types.ts";
import { Session } from "./session.ts";
import { PRESENCE_KIND, PresenceTracker } from "./presence/mod.ts";
import { MemoryPresenceStore } from "./store/presence/memory.ts";
import type { PresenceStore } from "./store/presence/types.ts";
import type { SessionContext } from "./session.ts";
import { MemoryRevocationStore } from "./store/revocations/memory.ts";
import type { RevocationStore } from "./store/revocations/types.ts";
import { createTicketStore } from "./store/tickets/from_config.ts";
import type { TicketStore } from "./store/tickets/types.ts";
import { StoreUnavailableError } from "./store/history/types.ts";
import { WriteBatcher } from "./write_batcher.ts";
import { challenge, reasonOf, recordAuthFailure } from "./routes/_auth_failure.ts";
import { adminStatsRoute } from "./routes/admin_stats.ts";
import { devTokenRoute } from "./routes/dev_token.ts";
import { metricsRoute } from "./routes/metrics.ts";
import { publishApi } from "./routes/publish_api.ts";
import { revokeRoute } from "./routes/revoke.ts";
import { ticketRoutes } from "./routes/ticket.ts";

/** Options for {@linkcode createServer}. Only `config` is required. */
export interface ServerOptions {
  /** Validated configuration (see `loadConfig`). */
  config: Config;
  /** Token verifier. @default jose with the config's keys, behind a verified-token cache */
  verifier?: TokenVerifier;
  /** Transport to other instances. @default an isolated in-memory bus */
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
  revocationStore?: RevocationStore | (() => RevocationStore);
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
  /** Extra routes served before the 404 (the client module, the demo page). */
  routes?: Record<string, (req: Request) => Response | Promise<Response>>;
}

/** What `/healthz` reports. */
export interface Health {
  status: "ok" | "degraded";
  uptimeMs: number;
  connections: number;
  rooms: number;
  instanceId: string;
  bus: BusHealth;
  /** The history store (rooms with history answer `unavailable` while it is degraded). */
  history: StoreHealth & { rooms: number; gaps: number };
  /**
   * The shared-state store named by `STORE` (tickets, revocations, presence,
   * and history when `HISTORY_STORE` is the same): the worst of their healths.
   */
  store: StoreHealth;
  /** Whether this server terminates TLS itself (`TLS_CERT_FILE`/`TLS_KEY_FILE`). */
  tls: boolean;
}

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
  /** Liveness report. */
  health(): Health;
  /** Prometheus registry wrapper. */
  readonly metrics: Metrics;
  /**
   * Graceful shutdown: refuse new work with 503, close every socket with 1001
   * "server going away", wait up to the grace period for buffered frames.
   */
  shutdown(options?: ShutdownOptions): Promise<void>;
  /** Releases timers and the bus; call after `shutdown`. Idempotent. */
  close(): Promise<void>;
}

const SWEEP_INTERVAL_MS = 30_000;

/**
 * `/healthz` as anyone may read it: every status, no `detail`. The error
 * texts name backends' addresses (`connect ECONNREFUSED 10.0.3.7:6379`);
 * they stay in the log and in the authenticated admin stats.
 */
function publicHealth(health: Health): Health {
  const { detail: _bus, ...bus } = health.bus;
  const { detail: _history, ...history } = health.history;
  const { detail: _store, ...store } = health.store;
  return { ...health, bus, history, store };
}

/** The given store; else, when some room can keep history, the factory's or the default one. */
async function openHistoryStore(
  given: ServerOptions["history"],
  wanted: boolean,
  fallback: () => HistoryStore,
): Promise<HistoryStore | undefined> {
  if (typeof given === "object") return given;
  if (!wanted) return undefined;
  return given === undefined ? fallback() : await given();
}

async function loadPolicy(path: string | undefined): Promise<RoomPolicy> {
  if (path === undefined) return new RoomPolicy();
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new TypeError(`ROOM_POLICY: cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    return RoomPolicy.parse(text);
  } catch (err) {
    throw new TypeError(`ROOM_POLICY: ${(err as Error).message}`);
  }
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
  const { config, clock = systemClock, audit = logtapeAuditSink(), routes = {} } = options;
  const devSecret = config.server.devMode
    ? options.devSecret ?? crypto.getRandomValues(new Uint8Array(32))
    : undefined;
  const revocations = new Revocations({
    store: typeof options.revocationStore === "function"
      ? options.revocationStore()
      : options.revocationStore ?? new MemoryRevocationStore({ clock }),
    clock,
    syncIntervalMs: config.auth.revocations.syncIntervalMs,
  });
  // Outside any cache: a cached verification never lets a revoked token through.
  const verifier = revocations.guard(
    options.verifier ?? withVerifiedTokenCache(
      await createJwtVerifier(config.auth.jwt, {
        clock,
        maxInfoDepth: config.limits.maxPayloadDepth,
        ...(devSecret ? { devSecret } : {}),
      }),
      { clock },
    ),
  );
  const policy = options.policy ?? await loadPolicy(config.auth.roomPolicyPath);
  const bus = options.bus ?? new MemoryBus();
  const defaultHistory = config.history.size > 0
    ? { size: config.history.size, ttlMs: config.history.ttlMs }
    : null;
  const historyStore = await openHistoryStore(
    options.history,
    defaultHistory !== null || policy.hasHistoryRules,
    () => new MemoryHistoryStore({ clock, maxBytes: config.history.maxBytes }),
  );
  const limitsFor = (room: string) => policy.historyFor(room, defaultHistory);
  const presenceWanted = config.presence.enabled || policy.hasPresenceRules;
  const presenceStore = typeof options.presence === "object"
    ? options.presence
    : !presenceWanted
    ? undefined
    : options.presence === undefined
    ? new MemoryPresenceStore({ ttlMs: config.presence.ttlMs, clock })
    : await options.presence();
  const startedAt = clock.now();
  const sessions = new Set<Session>();
  const perUser = new Map<string, number>();
  let pendingHandshakes = 0;
  let draining = false;
  // Aborts API bodies still arriving, so a stuck client cannot hold up shutdown.
  const shutdownController = new AbortController();
  const shutdownSignal = shutdownController.signal;
  let closed = false;

  const rooms = new RoomManager({
    bus,
    clock,
    ...(historyStore === undefined ? {} : {
      history: {
        store: historyStore,
        limitsFor,
        dedupeWindowMs: config.history.dedupeWindowMs,
        // Live frames queued behind a replay are unread data too.
        maxHeldBytes: config.limits.maxBufferedBytes,
      },
    }),
    onBusError: (err, room) =>
      audit.record("bus_error", { room, error: err instanceof Error ? err.message : String(err) }),
    onHistoryGap: (room, missing) => audit.record("history_gap", { room, missing }),
    onHistoryError: (err, room) =>
      audit.record("bus_error", {
        room,
        error: `history: ${err instanceof Error ? err.message : String(err)}`,
      }),
  });
  const presence = presenceStore === undefined ? undefined : new PresenceTracker({
    bus,
    store: presenceStore,
    enabled: (room) => policy.presenceFor(room, config.presence.enabled),
    diffMs: config.presence.diffMs,
    maxMembers: config.presence.maxMembers,
    clock,
    onError: (err) =>
      audit.record("bus_error", {
        error: `presence: ${err instanceof Error ? err.message : String(err)}`,
      }),
  });
  if (presence !== undefined) {
    rooms.onSystem(PRESENCE_KIND, (envelope) => presence.receive(envelope));
  }
  const historyReader = new HistoryReader({
    ...(historyStore === undefined ? {} : { store: historyStore }),
    limitsFor,
    pageBytes: config.history.pageBytes,
  });
  const limiter = new RateLimiter({
    capacity: config.limits.rate.capacity,
    refillPerSec: config.limits.rate.refillPerSec,
    clock,
  });
  const handshakeLimiter = new RateLimiter({
    capacity: config.limits.handshakesPerMinutePerIp,
    refillPerSec: config.limits.handshakesPerMinutePerIp / 60,
    maxKeys: 100_000,
    clock,
  });
  const tickets = options.tickets ??
    await createTicketStore(config, {
      clock,
      onError: (err) => audit.record("bus_error", { error: `tickets: ${err.message}` }),
    });
  const metrics = new Metrics({
    connections: () => sessions.size,
    rooms: () => rooms.size,
    busGaps: () => bus.health().gaps,
    busDropped: () => bus.health().dropped,
    busUp: () => bus.health().status === "ok",
    historyGaps: () => rooms.historyStats.gaps,
    historyUp: () => historyStore === undefined || historyStore.health().status === "ok",
    revocationsActive: () => revocations.active,
    revokedCloses: () => revocations.closedTotal,
  });
  const counters = metrics.counters;
  const batcher = new WriteBatcher();
  await revocations.start({ bus, rooms, sessions });
  const sweeper: TimerId = clock.setInterval(() => {
    limiter.sweep();
    handshakeLimiter.sweep();
    tickets.sweep();
    revocations.sweep();
  }, SWEEP_INTERVAL_MS);

  const ctx: SessionContext = {
    rooms,
    history: historyReader,
    ...(presence === undefined ? {} : { presence }),
    limiter,
    verifier,
    policy,
    clock,
    audit,
    counters,
    batcher,
    instanceId: bus.instanceId,
    limits: {
      maxMessageBytes: config.limits.maxMessageBytes,
      maxPayloadDepth: config.limits.maxPayloadDepth,
      maxRoomsPerConnection: config.limits.maxRoomsPerConnection,
      maxBufferedBytes: config.limits.maxBufferedBytes,
      replayStallMs: config.server.heartbeatMs,
      maxViolations: config.limits.rate.maxViolations,
      expiryWarningMs: config.auth.expiryWarningMs,
    },
    onEnd(session) {
      sessions.delete(session);
      const left = (perUser.get(session.userId) ?? 1) - 1;
      if (left <= 0) perUser.delete(session.userId);
      else perUser.set(session.userId, left);
    },
  };

  function authFailed(reason: AuthFailureReason, ip: string, source: string | undefined): Response {
    recordAuthFailure(audit, counters, reason, ip, source);
    Counters.bump(counters.refusals, 401);
    return refuse(401, reason === "missing" ? "missing token" : "invalid token", {
      "www-authenticate": challenge(reason),
    });
  }

  function refused(
    status: number,
    message: string,
    ip: string,
    headers: HeadersInit = {},
  ): Response {
    Counters.bump(counters.refusals, status);
    audit.record("handshake_refused", { status, reason: message, ip });
    return refuse(status, message, headers);
  }

  async function authenticate(
    req: Request,
    url: URL,
    ip: string,
    origin: string | null,
    protocols: readonly string[],
  ): Promise<{ principal: Principal; source: Session["info"]["source"] } | Response> {
    const credential = findCredential(req, url, config.auth.cookie, protocols);
    if (credential === null || credential.value === "") {
      return authFailed("missing", ip, credential?.source);
    }
    if (
      credential.source === "cookie" &&
      !cookieOriginAllowed(origin, req.headers.get("host"), config.auth.allowedOrigins)
    ) {
      Counters.bump(counters.refusals, 403);
      audit.record("handshake_refused", {
        status: 403,
        reason: RefusalReason.CookieCrossOrigin,
        ip,
        origin,
      });
      return refuse(403, "origin not allowed to use cookie credentials");
    }
    if (credential.source === "ticket") {
      let redeemed;
      try {
        redeemed = await tickets.redeem(credential.value, origin);
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) throw err;
        return refused(503, "ticket store unavailable", ip, { "retry-after": "1" });
      }
      if (!redeemed.ok) return authFailed(redeemed.reason, ip, "ticket");
      return { principal: redeemed.principal, source: "ticket" };
    }
    try {
      return { principal: await verifier.verify(credential.value), source: credential.source };
    } catch (err) {
      return authFailed(reasonOf(err), ip, credential.source);
    }
  }

  async function handshake(
    req: Request,
    url: URL,
    info: Deno.ServeHandlerInfo<Deno.Addr> | undefined,
    upgrade: Upgrader,
  ): Promise<Response> {
    const started = performance.now();
    const ip = clientAddress(req, info?.remoteAddr, config.server.trustProxy);
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return refused(426, "expected a WebSocket upgrade", ip, { upgrade: "websocket" });
    }
    if (draining) return refused(503, "server is shutting down", ip, { "retry-after": "1" });
    const wait = handshakeLimiter.take(ip);
    if (wait > 0) {
      return refused(429, "too many connection attempts", ip, {
        "retry-after": String(Math.ceil(wait / 1000)),
      });
    }
    // Before the credential: a refused handshake must not spend a one-time ticket.
    if (!wellFormedWebSocketHandshake(req)) {
      return refused(400, "invalid WebSocket handshake", ip, {
        "sec-websocket-version": WEBSOCKET_VERSION,
      });
    }
    // Every header is read before the upgrade: afterwards Deno answers "Request closed".
    const origin = req.headers.get("origin");
    if (!originAllowed(origin, req.headers.get("host"), config.auth.allowedOrigins)) {
      return refused(403, "origin not allowed", ip);
    }
    if (sessions.size + pendingHandshakes >= config.limits.maxConnections) {
      return refused(503, "connection limit reached", ip, { "retry-after": "5" });
    }
    const protocols = offeredProtocols(req);
    const batch = url.searchParams.get("batch") === "1";
    pendingHandshakes++;
    let auth: Awaited<ReturnType<typeof authenticate>>;
    try {
      auth = await authenticate(req, url, ip, origin, protocols);
    } finally {
      pendingHandshakes--;
    }
    if (auth instanceof Response) return auth;
    const { principal, source } = auth;
    // Also covers tickets issued before a revocation and redeemed after it.
    if (revocations.revokes(principal)) return authFailed("revoked", ip, source);
    if (draining) return refused(503, "server is shutting down", ip, { "retry-after": "1" });
    if (sessions.size >= config.limits.maxConnections) {
      return refused(503, "connection limit reached", ip, { "retry-after": "5" });
    }
    const userConnections = perUser.get(principal.userId) ?? 0;
    if (userConnections >= config.limits.maxConnectionsPerUser) {
      return refused(429, "too many connections for this user", ip, { "retry-after": "5" });
    }
    let upgraded: Upgraded;
    try {
      upgraded = upgrade(req, {
        // Chromium drops a connection whose offered subprotocol is not answered.
        ...(protocols.includes(BEARER_PROTOCOL) ? { protocol: BEARER_PROTOCOL } : {}),
        idleTimeoutSec: Math.max(1, Math.round(config.server.heartbeatMs / 1000)),
      });
    } catch {
      // Whatever else Deno finds wrong with the handshake: the client's fault, not ours.
      return refused(400, "invalid WebSocket handshake", ip);
    }
    const { socket, response } = upgraded;
    const session = new Session(ctx, socket, principal, { ip, origin, source, batch });
    sessions.add(session);
    perUser.set(principal.userId, userConnections + 1);
    counters.connectionsTotal++;
    audit.record("connect", {
      user: principal.userId,
      connection: session.id,
      ip,
      origin,
      source,
    });
    metrics.observeHandshake((performance.now() - started) / 1000);
    return response;
  }

  const ticket = ticketRoutes({
    auth: config.auth,
    verifier,
    tickets,
    limiter: handshakeLimiter,
    audit,
    counters,
  });
  const publish = publishApi({
    admin: config.admin,
    limits: config.limits,
    verifier,
    rooms,
    clock,
    audit,
    counters,
    shutdownSignal,
  });
  const adminStats = adminStatsRoute({
    admin: config.admin,
    verifier,
    audit,
    counters,
    clock,
    health,
    activity: () => rooms.activity(),
    sections: {
      ...(presence === undefined ? {} : { presence: () => ({ ...presence.stats() }) }),
      revocations: () => ({
        active: revocations.active,
        closed: revocations.closedTotal,
        store: revocations.store.kind,
        storeStatus: revocations.store.health().status,
      }),
    },
  });
  const revoke = revokeRoute({
    admin: config.admin,
    revocationTtlMs: config.auth.revocations.ttlMs,
    limits: config.limits,
    verifier,
    revocations,
    clock,
    audit,
    counters,
    shutdownSignal,
  });
  const devToken = devTokenRoute(devSecret, clock);
  const metricsHandler = metricsRoute(metrics, config.admin.metricsToken);

  function health(): Health {
    const busHealth = bus.health();
    const storeHealth: StoreHealth = historyStore?.health() ?? { status: "ok", transport: "none" };
    const shared = [tickets.health(), revocations.store.health()];
    if (presenceStore !== undefined) shared.push(presenceStore.health());
    if (historyStore !== undefined && historyStore.kind === config.store.kind) {
      shared.push(storeHealth);
    }
    const store = shared.find((h) => h.status !== "ok") ??
      { status: "ok", transport: config.store.kind };
    return {
      status: busHealth.status === "ok" && storeHealth.status === "ok" && store.status === "ok"
        ? "ok"
        : "degraded",
      uptimeMs: clock.now() - startedAt,
      connections: sessions.size,
      rooms: rooms.size,
      instanceId: bus.instanceId,
      bus: busHealth,
      history: { ...storeHealth, ...rooms.historyStats },
      store,
      tls: config.tls !== undefined,
    };
  }

  async function handler(
    req: Request,
    info?: Deno.ServeHandlerInfo<Deno.Addr>,
    upgrade: Upgrader = denoUpgrade,
  ): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname;
    try {
      if (path === "/ws") {
        if (req.method !== "GET") return refuse(405, "use GET", { allow: "GET" });
        return await handshake(req, url, info, upgrade);
      }
      if (path === "/healthz" && req.method === "GET") return json(200, publicHealth(health()));
      if (path === "/metrics" && req.method === "GET") return await metricsHandler(req);
      const ip = clientAddress(req, info?.remoteAddr, config.server.trustProxy);
      if (path === "/ticket") {
        if (req.method === "OPTIONS") return ticket.preflight(req);
        if (req.method !== "POST") {
          return apiError(405, "method_not_allowed", "use POST", { allow: "POST" });
        }
        if (draining) return apiError(503, "unavailable", "server is shutting down");
        return await ticket.issue(req, ip);
      }
      if (path === "/api/publish") {
        if (req.method !== "POST") {
          return apiError(405, "method_not_allowed", "use POST", { allow: "POST" });
        }
        if (draining) return apiError(503, "unavailable", "server is shutting down");
        return await publish(req, ip);
      }
      if (path === "/api/admin/stats") return await adminStats(req, ip);
      if (path === "/api/revoke") {
        if (draining && req.method !== "GET") {
          return apiError(503, "unavailable", "server is shutting down");
        }
        return await revoke(req, ip);
      }
      if (path === "/dev/token" && req.method === "GET") {
        return await devToken(req, url, info?.remoteAddr);
      }
      const route = routes[path];
      if (route !== undefined && (req.method === "GET" || req.method === "HEAD")) {
        return await route(req);
      }
      return apiError(404, "not_found", "not found");
    } catch (err) {
      audit.record("internal_error", {
        error: err instanceof Error ? err.message : String(err),
        path,
      });
      return apiError(500, "internal", "internal error");
    }
  }

  return {
    handler,
    instanceId: bus.instanceId,
    devSecret,
    metrics,
    presence,
    async publish(room, payload, publishOptions = {}) {
      const { from = "server", idempotencyKey } = publishOptions;
      const frame = encodeRoomMessage(room, JSON.stringify(payload), from, clock.now());
      return await rooms.publish(
        room,
        frame,
        idempotencyKey === undefined ? {} : { dedupeKey: apiDedupeKey(from, idempotencyKey) },
      );
    },
    stats: () => ({
      connections: sessions.size,
      rooms: rooms.size,
      users: perUser.size,
      limiterKeys: limiter.size,
      handshakeLimiterKeys: handshakeLimiter.size,
      tickets: tickets.size,
    }),
    health,
    async shutdown(shutdownOptions = {}) {
      const { graceMs = config.server.shutdownGraceMs } = shutdownOptions;
      draining = true;
      shutdownController.abort();
      const open = [...sessions];
      for (const session of open) session.close(CloseCode.GoingAway, "server going away");
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
      clock.clearInterval(sweeper);
      batcher.close();
      for (const session of [...sessions]) session.close(CloseCode.GoingAway, "server going away");
      // Before the bus: the last leaves are announced and our entries removed from the store.
      await presence?.close();
      await presenceStore?.close();
      await revocations.close();
      await tickets.close();
      await bus.close();
      await historyStore?.close();
    },
  };
}
