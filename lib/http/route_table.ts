/**
 * Every path the server answers, in one table: the WebSocket handshake, the
 * health and metrics probes, the ticket, publish, read, revoke and admin APIs, the
 * Pusher handshake and HTTP API (when there are Pusher apps), the dev token,
 * then the static routes a caller adds (the client module, the
 * demo and admin pages). Which method each answers and whether it stops
 * taking writes while draining is read here; the router enforces it.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { json } from "./common.ts";
import type { Services } from "./compose.ts";
import { type Health, publicHealth } from "./health.ts";
import type { Route, RouteHandler } from "./router.ts";
import { adminStatsRoute } from "./routes/admin_stats.ts";
import { devTokenRoute } from "./routes/dev_token.ts";
import { metricsRoute } from "./routes/metrics.ts";
import { publishApi } from "./routes/publish_api.ts";
import { readApi } from "./routes/read_api.ts";
import { revokeRoute } from "./routes/revoke.ts";
import { ticketRoutes } from "./routes/ticket.ts";
import { pusherApiRoutes } from "../protocols/pusher/api_routes.ts";
import { appRoomPrefix } from "../protocols/pusher/channel_names.ts";
import type { Section } from "./admin/stats.ts";

/** What {@linkcode routeTable} needs. */
export interface RouteTableDeps {
  config: Pick<Config, "auth" | "admin" | "limits" | "presence">;
  services: Services;
  /** The full health report (the admin feed's); `/healthz` shows its public view. */
  health(): Health;
  /** The `/ws` handshake. */
  handshake: RouteHandler;
  /** The Pusher handshake (`/app/{key}`), when the server has Pusher apps; else 404. */
  pusherHandshake?: RouteHandler;
  /** Aborted when the server shuts down: API bodies still arriving are abandoned. */
  shutdownSignal: AbortSignal;
  /** Static routes, answered on `GET` and `HEAD`. */
  extra: Record<string, (req: Request) => Response | Promise<Response>>;
}

/** One admin section per Pusher app: this isolate's connections, channels and frames. */
function pusherSections(deps: RouteTableDeps): Record<string, () => Section> {
  const { pusher, rooms } = deps.services;
  if (pusher === undefined) return {};
  return Object.fromEntries(
    pusher.apps.list().map((app) => {
      const prefix = appRoomPrefix(app.id);
      return [`pusher app ${app.id}`, (): Section => {
        const stats = pusher.stats.get(app.id);
        let channels = 0;
        for (const { room } of rooms.activity()) if (room.startsWith(prefix)) channels++;
        return {
          enabled: app.enabled,
          connections: stats?.open.size ?? 0,
          channels,
          messagesIn: stats?.messagesIn ?? 0,
          messagesOut: stats?.messagesOut ?? 0,
        };
      }];
    }),
  );
}

/** `GET /api/admin/stats`: the health report, the busiest rooms and the subsystems' sections. */
function adminStatsHandler(deps: RouteTableDeps): (req: Request, ip: string) => Promise<Response> {
  const { verifier, audit, clock, revocations, rooms, presence, webhooks } = deps.services;
  return adminStatsRoute({
    admin: deps.config.admin,
    verifier,
    audit,
    counters: deps.services.metrics.counters,
    clock,
    health: deps.health,
    activity: () => rooms.activity(),
    sections: {
      ...(presence === undefined ? {} : { presence: () => ({ ...presence.stats() }) }),
      ...pusherSections(deps),
      ...(webhooks === undefined ? {} : {
        webhooks: () => ({ ...webhooks.engine.stats(), queue: webhooks.queue.kind }),
      }),
      revocations: () => ({
        active: revocations.active,
        closed: revocations.closedTotal,
        store: revocations.store.kind,
        storeStatus: revocations.store.health().status,
      }),
    },
  });
}

/** `/ticket` and the operator APIs. */
function apiRoutes(deps: RouteTableDeps): Route[] {
  const { config: { auth, admin, limits }, services, shutdownSignal } = deps;
  const { verifier, audit, clock, revocations } = services;
  const counters = services.metrics.counters;
  const ticket = ticketRoutes({
    auth,
    verifier,
    tickets: services.tickets,
    limiter: services.handshakeLimiter,
    audit,
    counters,
  });
  const publish = publishApi({
    admin,
    limits,
    verifier,
    publish: services.apiPublish,
    clock,
    audit,
    counters,
    shutdownSignal,
  });
  const adminStats = adminStatsHandler(deps);
  const revoke = revokeRoute({
    admin,
    revocationTtlMs: auth.revocations.ttlMs,
    limits,
    verifier,
    revocations,
    clock,
    audit,
    counters,
    shutdownSignal,
  });
  return [
    {
      path: "/ticket",
      methods: ["POST", "OPTIONS"],
      drains: true,
      handler: (req, { ip }) =>
        req.method === "OPTIONS" ? ticket.preflight(req) : ticket.issue(req, ip),
    },
    {
      path: "/api/publish",
      methods: ["POST"],
      drains: true,
      handler: (req, { ip }) => publish(req, ip),
    },
    ...readRoutes(deps),
    {
      path: "/api/admin/stats",
      methods: ["GET"],
      drains: false,
      handler: (req, { ip }) => adminStats(req, ip),
    },
    {
      path: "/api/revoke",
      methods: ["GET", "POST", "DELETE"],
      drains: true,
      handler: (req, { ip }) => revoke(req, ip),
    },
  ];
}

/** `GET /api/history` and `GET /api/presence`: what the backend SDKs read. */
function readRoutes(deps: RouteTableDeps): Route[] {
  const { config: { admin }, services } = deps;
  const read = readApi({
    admin,
    verifier: services.verifier,
    audit: services.audit,
    counters: services.metrics.counters,
    history: services.historyReader,
    presenceStore: services.presenceStore,
    presenceFor: (room) => services.policy.presenceFor(room, deps.config.presence.enabled),
  });
  return [
    {
      path: "/api/history",
      methods: ["GET"],
      drains: false,
      handler: (req, { url, ip }) => read.history(req, url, ip),
    },
    {
      path: "/api/presence",
      methods: ["GET"],
      drains: false,
      handler: (req, { url, ip }) => read.presence(req, url, ip),
    },
  ];
}

/** The Pusher HTTP API (`/apps/{id}/…`), when the server has Pusher apps; else those paths are 404. */
function pusherRoutes(deps: RouteTableDeps): Route[] {
  const { services, shutdownSignal, config: { limits } } = deps;
  const { pusher, clock, audit, metrics } = services;
  if (pusher === undefined) return [];
  return pusherApiRoutes({
    apps: pusher.apps,
    channels: pusher.channels,
    clock,
    audit,
    counters: metrics.counters,
    limits,
    shutdownSignal,
  });
}

/** The whole table. */
export function routeTable(deps: RouteTableDeps): Route[] {
  const { services } = deps;
  const metrics = metricsRoute(services.metrics, deps.config.admin.metricsToken);
  const routes: Route[] = [
    { path: "/ws", methods: ["GET"], drains: false, handler: deps.handshake, refusals: "text" },
    {
      path: "/healthz",
      methods: ["GET"],
      drains: false,
      handler: () => json(200, publicHealth(deps.health())),
    },
    { path: "/metrics", methods: ["GET"], drains: false, handler: (req) => metrics(req) },
    ...apiRoutes(deps),
    ...pusherRoutes(deps),
  ];
  if (deps.pusherHandshake !== undefined) {
    routes.push({
      path: "/app/{key}",
      methods: ["GET"],
      drains: false,
      handler: deps.pusherHandshake,
      refusals: "text",
    });
  }
  if (services.devSecret !== undefined) {
    const devToken = devTokenRoute(services.devSecret, services.clock);
    routes.push({
      path: "/dev/token",
      methods: ["GET"],
      drains: false,
      handler: (req, { url, info }) => devToken(req, url, info?.remoteAddr),
    });
  }
  for (const [path, handler] of Object.entries(deps.extra)) {
    routes.push({ path, methods: ["GET", "HEAD"], drains: false, handler: (req) => handler(req) });
  }
  return routes;
}
