/**
 * The Pusher front door, `GET /app/{key}?protocol=7`: the same pre-upgrade
 * defences as `/ws` (upgrade, draining, per-IP handshake rate, well-formed
 * handshake, the app's `allowedOrigins` or `ALLOWED_ORIGINS`), then the
 * upgrade; what Pusher answers with a close code (bad path, protocol
 * version, unknown key, disabled app, capacity, the app's quota) is answered
 * with `pusher:error` and that code once the socket opens, so clients stop
 * or back off as they are built to. An admitted socket becomes a core
 * session carried by a {@linkcode PusherConnection}.
 *
 * @module
 */
import type { AuditSink } from "../../audit.ts";
import type { Principal } from "../../core/auth.ts";
import { CoreSession } from "../../core/session.ts";
import type { Upgraded, WebSocketLike } from "../../edge/types.ts";
import type { LimitsConfig } from "../../config.ts";
import type { Connections } from "../../http/connections.ts";
import { refuseHandshake, type ScreenDeps, screenUpgrade } from "../../http/gate.ts";
import type { RouteContext } from "../../http/router.ts";
import type { Metrics, PusherAppFigures } from "../../metrics.ts";
import type { RoomManager } from "../../core/rooms.ts";
import { ActivityWatch } from "./activity.ts";
import { AppStats } from "./app_stats.ts";
import type { PusherApp, PusherApps } from "./apps.ts";
import { appRoomPrefix } from "./channel_names.ts";
import { PUSHER_PROTOCOL, PusherCode } from "./codes.ts";
import { encodeError } from "./codec.ts";
import { PusherConnection, type PusherContext } from "./connection.ts";
import { newSocketId } from "./socket_id.ts";
import type { Claim, SharedCounts } from "../../core/shared_limits.ts";

/** The route of the front door. */
export const PUSHER_WS_PATH = "/app/{key}";

/** Oldest protocol version accepted (5 and 6 frame events as 7 does). */
const MIN_PROTOCOL = 5;

/** What {@linkcode PusherFrontDoor} needs. */
export interface PusherFrontDoorDeps extends ScreenDeps {
  readonly apps: PusherApps;
  /** Each app's connections and counters on this isolate (shared with the channels). */
  readonly stats: ReadonlyMap<string, AppStats>;
  /** `ALLOWED_ORIGINS`, for apps without their own `allowedOrigins`. */
  readonly allowedOrigins: readonly string[] | undefined;
  /** Cluster-wide connection caps (`LIMITS_STORE`): an app's `maxConnections` counted there. */
  readonly caps?: SharedCounts | undefined;
  /** `MAX_CONNECTIONS`: past it, 4100. */
  readonly limits: Pick<LimitsConfig, "maxConnections">;
  /** `HEARTBEAT_MS`: Pusher's activity timeout. */
  readonly heartbeatMs: number;
  readonly connections: Connections;
  readonly rooms: RoomManager;
  readonly audit: AuditSink;
  readonly metrics: Metrics;
  /** What each session is built with (the activity watch is added here). */
  readonly session: Omit<PusherContext, "activity">;
}

/** A refusal Pusher answers after the upgrade, with its code. */
interface Refusal {
  readonly code: PusherCode;
  readonly message: string;
}

/** The protocol version's refusal, if any. */
function versionRefusal(url: URL): Refusal | null {
  const version = url.searchParams.get("protocol");
  if (version === null) return { code: PusherCode.NoVersion, message: "no protocol version" };
  if (!/^\d{1,3}$/.test(version)) {
    return { code: PusherCode.InvalidVersion, message: "invalid protocol version" };
  }
  const n = Number(version);
  if (n < MIN_PROTOCOL || n > PUSHER_PROTOCOL) {
    return { code: PusherCode.UnsupportedVersion, message: `unsupported protocol version ${n}` };
  }
  return null;
}

/** Over the app's `maxConnections`, on this isolate or (`LIMITS_STORE`) the cluster. */
const OVER_QUOTA: Refusal = {
  code: PusherCode.AppOverQuota,
  message: "the app's connection quota is reached",
};

/** Tells an upgraded socket why it is refused, once it opens, and closes it. */
function refuseOpened(socket: WebSocketLike, refusal: Refusal): void {
  socket.onopen = () => {
    try {
      socket.send(encodeError(refusal.code, refusal.message));
      socket.close(refusal.code, refusal.message);
    } catch {
      // the client left already
    }
  };
  socket.onmessage = () => {};
  socket.onclose = () => {};
  socket.onerror = () => {};
}

/**
 * The `/app/{key}` route: {@linkcode PusherFrontDoor.handle} admits a
 * handshake or answers why not. Owns the activity timer ({@linkcode close}).
 */
export class PusherFrontDoor {
  readonly #deps: PusherFrontDoorDeps;
  readonly #ctx: PusherContext;
  readonly #stats: ReadonlyMap<string, AppStats>;

  /** @param deps the apps, limits and services the front door reads */
  constructor(deps: PusherFrontDoorDeps) {
    this.#deps = deps;
    const activity = new ActivityWatch({
      timeoutMs: deps.heartbeatMs,
      clock: deps.session.clock,
    });
    this.#ctx = { ...deps.session, activity };
    this.#stats = deps.stats;
  }

  /** One app's figures on this isolate. */
  stats(appId: string): AppStats | undefined {
    return this.#stats.get(appId);
  }

  /** Every app's figures, for `/metrics`. */
  *figures(): IterableIterator<PusherAppFigures> {
    const channels = new Map<string, number>();
    for (const { room } of this.#deps.rooms.activity()) {
      for (const appId of this.#stats.keys()) {
        if (room.startsWith(appRoomPrefix(appId))) {
          channels.set(appId, (channels.get(appId) ?? 0) + 1);
        }
      }
    }
    for (const [app, stats] of this.#stats) {
      const { messagesIn, messagesOut } = stats;
      yield {
        app,
        connections: stats.open.size,
        channels: channels.get(app) ?? 0,
        messagesIn,
        messagesOut,
      };
    }
  }

  /** Stops the activity timer (sessions are closed by the server). */
  close(): void {
    this.#ctx.activity.close();
  }

  /** The route handler (bound: pass it as is). */
  readonly handle = async (req: Request, route: RouteContext): Promise<Response> => {
    const started = performance.now();
    const { url, ip } = route;
    const key = route.params.key ?? "";
    const app = this.#deps.apps.byKey(key);
    const origins = app?.allowedOrigins ?? this.#deps.allowedOrigins;
    const screened = screenUpgrade(this.#deps, req, ip, origins);
    if (screened !== null) return screened;
    const origin = req.headers.get("origin");
    let refusal = this.#refusal(key, url, app);
    const claim = refusal === null ? await this.#claim(app) : undefined;
    if (claim === null) refusal = OVER_QUOTA;
    let upgraded: Upgraded;
    try {
      upgraded = route.upgrade(req, {
        // Our activity timeout (4201) comes first; the socket's own is for dead peers.
        idleTimeoutSec: Math.max(1, Math.round((this.#deps.heartbeatMs * 3) / 1000)),
      });
    } catch {
      claim?.release();
      // Whatever else Deno finds wrong with the handshake: the client's fault, not ours.
      return refuseHandshake(this.#deps, 400, "invalid WebSocket handshake", ip);
    }
    const { socket, response } = upgraded;
    if (refusal !== null || app === undefined) {
      refuseOpened(socket, refusal ?? { code: PusherCode.UnknownApp, message: "unknown app" });
      this.#deps.audit.record("handshake_refused", {
        status: refusal?.code ?? PusherCode.UnknownApp,
        reason: refusal?.message,
        ip,
      });
      return response;
    }
    this.#accept(app, socket, ip, origin, claim ?? undefined);
    this.#deps.metrics.observeHandshake((performance.now() - started) / 1000);
    return response;
  };

  /** What Pusher refuses after the upgrade, in its order; null to accept. */
  #refusal(key: string, url: URL, app: PusherApp | undefined): Refusal | null {
    if (key === "") return { code: PusherCode.PathNotFound, message: "the path is /app/{key}" };
    const version = versionRefusal(url);
    if (version !== null) return version;
    if (app === undefined) {
      return { code: PusherCode.UnknownApp, message: `app key ${key} does not exist` };
    }
    if (!app.enabled) return { code: PusherCode.AppDisabled, message: "the app is disabled" };
    const { connections, limits } = this.#deps;
    if (connections.size + connections.pending >= limits.maxConnections) {
      return { code: PusherCode.OverCapacity, message: "the server is over capacity" };
    }
    const open = this.#stats.get(app.id)?.open.size ?? 0;
    if (app.maxConnections !== undefined && open >= app.maxConnections) return OVER_QUOTA;
    return null;
  }

  /**
   * The app's connection counted cluster-wide against its `maxConnections`
   * (`LIMITS_STORE`); null when that makes too many, undefined when not counted there.
   */
  async #claim(app: PusherApp | undefined): Promise<Claim | null | undefined> {
    const caps = this.#deps.caps;
    if (caps === undefined || app?.maxConnections === undefined) return undefined;
    return await caps.claim(`a:${app.id}`, app.maxConnections) ?? null;
  }

  #accept(
    app: PusherApp,
    socket: WebSocketLike,
    ip: string,
    origin: string | null,
    claim: Claim | undefined,
  ): void {
    const socketId = newSocketId();
    const stats = this.#stats.get(app.id) ?? new AppStats();
    // Anonymous until `pusher:signin`: a user id no token can name.
    const principal: Principal = {
      userId: `~${socketId}`,
      expiresAt: null,
      rooms: [],
      roomsReadonly: [],
      roles: [],
    };
    const info = { ip, origin, source: "pusher", batch: false } as const;
    const session = new CoreSession(
      this.#ctx,
      principal,
      info,
      (core) => new PusherConnection(core, socket, this.#ctx, app, socketId, stats),
    );
    if (claim !== undefined) this.#deps.caps?.hold(session, claim);
    this.#deps.connections.add(session);
    this.#deps.metrics.counters.connectionsTotal++;
    this.#deps.audit.record("connect", {
      user: principal.userId,
      connection: session.id,
      ip,
      origin,
      source: "pusher",
      app: app.id,
    });
  }
}
