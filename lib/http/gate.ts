/**
 * The `/ws` handshake's admission, in this order: a WebSocket upgrade at all,
 * not draining, the per-IP handshake rate, a well-formed RFC 6455 handshake,
 * the Origin, the connection cap; then the credential (a one-time ticket is
 * spent only by a handshake that passed all of that), revocation, draining
 * and the cap again, the per-user cap; then the upgrade and the session.
 * Every refusal is counted by status and audited.
 *
 * @module
 */
import type { AuditSink } from "../audit.ts";
import type { Principal, TokenVerifier } from "../core/auth.ts";
import { RefusalReason } from "../codes.ts";
import type { AuthFailureReason } from "../codes.ts";
import type { AuthConfig, LimitsConfig } from "../config.ts";
import type { Upgraded } from "../edge/types.ts";
import {
  BEARER_PROTOCOL,
  cookieOriginAllowed,
  findCredential,
  offeredProtocols,
  originAllowed,
  WEBSOCKET_VERSION,
  wellFormedWebSocketHandshake,
} from "./handshake.ts";
import { refuse } from "./common.ts";
import { Counters, type Metrics } from "../metrics.ts";
import type { RateLimiter } from "../core/rate_limiter.ts";
import type { Revocations } from "../core/revocations.ts";
import { Session } from "../protocols/native/mod.ts";
import type { SessionContext } from "../protocols/native/mod.ts";
import { retryAfter, StoreUnavailableError } from "../store/types.ts";
import type { TicketStore } from "../store/tickets/types.ts";
import type { Connections } from "./connections.ts";
import type { RouteContext } from "./router.ts";
import { challenge, reasonOf, recordAuthFailure } from "./routes/_auth_failure.ts";
import type { Hooks } from "../hooks/mod.ts";
import type { ConnectGrant } from "../core/types.ts";
import { askConnect } from "../hooks/connect.ts";
import type { Claim, SharedCounts } from "../core/shared_limits.ts";

/** What {@linkcode handshakeGate} needs. */
export interface GateDeps {
  /** `ALLOWED_ORIGINS` and the cookie credential's name. */
  auth: Pick<AuthConfig, "allowedOrigins" | "cookie">;
  /** `MAX_CONNECTIONS` and `MAX_CONNECTIONS_PER_USER`. */
  limits: Pick<LimitsConfig, "maxConnections" | "maxConnectionsPerUser">;
  /** `HEARTBEAT_MS`: the socket's idle timeout is derived from it. */
  heartbeatMs: number;
  verifier: TokenVerifier;
  tickets: TicketStore;
  revocations: Pick<Revocations, "revokes">;
  /** The per-IP handshake limiter. */
  handshakeLimiter: RateLimiter;
  /** Cluster-wide connection caps (`LIMITS_STORE`); undefined: this isolate's count only. */
  caps?: SharedCounts | undefined;
  connections: Connections;
  audit: AuditSink;
  metrics: Metrics;
  /** What each session is built with. */
  session: SessionContext;
  /** The connect hook (`HOOK_CONNECT_URL`), asked last before the upgrade. */
  hooks: { readonly callers: Pick<Hooks, "connect" | "connectFailOpen"> };
  /** Whether the server is draining now. */
  draining(): boolean;
}

/** What {@linkcode screenUpgrade} reads: the limiter, the audit log, the counters. */
export type ScreenDeps = Pick<GateDeps, "handshakeLimiter" | "audit" | "metrics" | "draining">;

/** Refuses a handshake with `status`: counted by status and audited. */
export function refuseHandshake(
  deps: Pick<GateDeps, "audit" | "metrics">,
  status: number,
  message: string,
  ip: string,
  headers: HeadersInit = {},
): Response {
  Counters.bump(deps.metrics.counters.refusals, status);
  deps.audit.record("handshake_refused", { status, reason: message, ip });
  return refuse(status, message, headers);
}

/**
 * The checks every WebSocket front door makes before anything else, in this
 * order: a WebSocket upgrade at all, not draining, the per-IP handshake rate,
 * a well-formed RFC 6455 handshake, the Origin against `allowedOrigins`
 * (undefined: same origin only). Null when they all pass.
 */
export function screenUpgrade(
  deps: ScreenDeps,
  req: Request,
  ip: string,
  allowedOrigins: readonly string[] | undefined,
): Response | null {
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return refuseHandshake(deps, 426, "expected a WebSocket upgrade", ip, { upgrade: "websocket" });
  }
  if (deps.draining()) {
    return refuseHandshake(deps, 503, "server is shutting down", ip, { "retry-after": "1" });
  }
  const wait = deps.handshakeLimiter.take(ip);
  if (wait > 0) {
    return refuseHandshake(deps, 429, "too many connection attempts", ip, {
      "retry-after": String(Math.ceil(wait / 1000)),
    });
  }
  // Before the credential: a refused handshake must not spend a one-time ticket.
  if (!wellFormedWebSocketHandshake(req)) {
    return refuseHandshake(deps, 400, "invalid WebSocket handshake", ip, {
      "sec-websocket-version": WEBSOCKET_VERSION,
    });
  }
  // Every header is read before the upgrade: afterwards Deno answers "Request closed".
  if (!originAllowed(req.headers.get("origin"), req.headers.get("host"), allowedOrigins)) {
    return refuseHandshake(deps, 403, "origin not allowed", ip);
  }
  return null;
}

/** Who a credential names, and where it was found. */
interface Authenticated {
  principal: Principal;
  source: Session["info"]["source"];
  /** What the connect hook granted, when there is one. */
  grant?: ConnectGrant | undefined;
  /** The user's connection counted cluster-wide (`LIMITS_STORE`). */
  claim?: Claim | undefined;
}

/**
 * The `/ws` route: {@linkcode HandshakeGate.handle} admits a handshake or
 * answers why not.
 *
 * @example
 * ```ts ignore
 * const gate = new HandshakeGate(deps);
 * const route = { path: "/ws", methods: ["GET"], drains: false, handler: gate.handle };
 * ```
 */
export class HandshakeGate {
  readonly #deps: GateDeps;
  readonly #counters: Counters;

  /** @param deps the configuration sections and services the gate reads */
  constructor(deps: GateDeps) {
    this.#deps = deps;
    this.#counters = deps.metrics.counters;
  }

  /** The route handler (bound: pass it as is). */
  readonly handle = async (req: Request, route: RouteContext): Promise<Response> => {
    const { connections, audit, metrics } = this.#deps;
    const ctx: SessionContext = this.#deps.session;
    const started = performance.now();
    const { ip } = route;
    const screened = this.#screen(req, ip);
    if (screened !== null) return screened;
    const origin = req.headers.get("origin");
    const protocols = offeredProtocols(req);
    const batch = route.url.searchParams.get("batch") === "1";
    const connectionId = crypto.randomUUID();
    const auth = await connections.pendingWhile(async () => {
      const found = await this.#authenticate(req, route, origin, protocols);
      if (found instanceof Response) return found;
      const admitted = this.#admit(found, ip) ?? await this.#askBackend(found, connectionId, ip);
      return admitted instanceof Response ? admitted : await this.#claim(admitted, ip);
    });
    if (auth instanceof Response) return auth;
    const { principal, source, grant, claim } = auth;
    let upgraded: Upgraded;
    try {
      upgraded = route.upgrade(req, {
        // Chromium drops a connection whose offered subprotocol is not answered.
        ...(protocols.includes(BEARER_PROTOCOL) ? { protocol: BEARER_PROTOCOL } : {}),
        idleTimeoutSec: Math.max(1, Math.round(this.#deps.heartbeatMs / 1000)),
      });
    } catch {
      claim?.release();
      // Whatever else Deno finds wrong with the handshake: the client's fault, not ours.
      return this.#refused(400, "invalid WebSocket handshake", ip);
    }
    const { socket, response } = upgraded;
    const info = {
      ip,
      origin,
      source,
      batch,
      connectionId,
      ...(grant === undefined ? {} : { connectGrant: grant }),
    };
    const session = new Session(ctx, socket, principal, info);
    if (claim !== undefined) this.#deps.caps?.hold(session, claim);
    connections.add(session);
    this.#counters.connectionsTotal++;
    audit.record("connect", {
      user: principal.userId,
      connection: session.id,
      ip,
      origin,
      source,
    });
    metrics.observeHandshake((performance.now() - started) / 1000);
    return response;
  };

  #authFailed(reason: AuthFailureReason, ip: string, source: string | undefined): Response {
    recordAuthFailure(this.#deps.audit, this.#counters, reason, ip, source);
    Counters.bump(this.#counters.refusals, 401);
    return refuse(401, reason === "missing" ? "missing token" : "invalid token", {
      "www-authenticate": challenge(reason),
    });
  }

  #refused(status: number, message: string, ip: string, headers: HeadersInit = {}): Response {
    return refuseHandshake(this.#deps, status, message, ip, headers);
  }

  #shuttingDown(ip: string): Response {
    return this.#refused(503, "server is shutting down", ip, { "retry-after": "1" });
  }

  #full(ip: string): Response {
    return this.#refused(503, "connection limit reached", ip, { "retry-after": "5" });
  }

  /** The checks before the credential; null when they all pass. */
  #screen(req: Request, ip: string): Response | null {
    const { auth, limits, connections } = this.#deps;
    const screened = screenUpgrade(this.#deps, req, ip, auth.allowedOrigins);
    if (screened !== null) return screened;
    if (connections.size + connections.pending >= limits.maxConnections) return this.#full(ip);
    return null;
  }

  async #redeemTicket(
    ticket: string,
    ip: string,
    origin: string | null,
  ): Promise<Authenticated | Response> {
    let redeemed;
    try {
      redeemed = await this.#deps.tickets.redeem(ticket, origin);
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err;
      return this.#refused(503, "ticket store unavailable", ip, retryAfter(err));
    }
    if (!redeemed.ok) return this.#authFailed(redeemed.reason, ip, "ticket");
    return { principal: redeemed.principal, source: "ticket" };
  }

  async #authenticate(
    req: Request,
    { url, ip }: RouteContext,
    origin: string | null,
    protocols: readonly string[],
  ): Promise<Authenticated | Response> {
    const { auth, audit } = this.#deps;
    const credential = findCredential(req, url, auth.cookie, protocols);
    if (credential === null || credential.value === "") {
      return this.#authFailed("missing", ip, credential?.source);
    }
    if (
      credential.source === "cookie" &&
      !cookieOriginAllowed(origin, req.headers.get("host"), auth.allowedOrigins)
    ) {
      Counters.bump(this.#counters.refusals, 403);
      audit.record("handshake_refused", {
        status: 403,
        reason: RefusalReason.CookieCrossOrigin,
        ip,
        origin,
      });
      return refuse(403, "origin not allowed to use cookie credentials");
    }
    if (credential.source === "ticket") {
      return await this.#redeemTicket(credential.value, ip, origin);
    }
    try {
      return {
        principal: await this.#deps.verifier.verify(credential.value),
        source: credential.source,
      };
    } catch (err) {
      return this.#authFailed(reasonOf(err), ip, credential.source);
    }
  }

  /** The connect hook's verdict; the server may have started draining while it was asked. */
  async #askBackend(
    auth: Authenticated,
    connectionId: string,
    ip: string,
  ): Promise<Authenticated | Response> {
    const verdict = await askConnect(this.#deps.hooks.callers, auth.principal, {
      connectionId,
      ip,
    });
    if (!verdict.ok) {
      const retry = verdict.status === 503 ? { "retry-after": "1" } : {};
      return this.#refused(verdict.status, verdict.reason, ip, retry);
    }
    if (this.#deps.draining()) return this.#shuttingDown(ip);
    return { principal: verdict.principal, source: auth.source, grant: verdict.grant };
  }

  /** The user's connection counted cluster-wide, unless that makes too many (`LIMITS_STORE`). */
  async #claim(auth: Authenticated, ip: string): Promise<Authenticated | Response> {
    const { caps, limits } = this.#deps;
    if (caps === undefined) return auth;
    const claim = await caps.claim(`u:${auth.principal.userId}`, limits.maxConnectionsPerUser);
    if (claim === undefined) return this.#tooMany(ip);
    if (!this.#deps.draining()) return { ...auth, claim };
    claim.release();
    return this.#shuttingDown(ip);
  }

  #tooMany(ip: string): Response {
    return this.#refused(429, "too many connections for this user", ip, { "retry-after": "5" });
  }

  /** The checks after the credential; null when they all pass. */
  #admit({ principal, source }: Authenticated, ip: string): Response | null {
    const { limits, connections } = this.#deps;
    // Also covers tickets issued before a revocation and redeemed after it.
    if (this.#deps.revocations.revokes(principal)) return this.#authFailed("revoked", ip, source);
    if (this.#deps.draining()) return this.#shuttingDown(ip);
    if (connections.size >= limits.maxConnections) return this.#full(ip);
    if (connections.countFor(principal.userId) >= limits.maxConnectionsPerUser) {
      return this.#tooMany(ip);
    }
    return null;
  }
}
