/**
 * `POST /ticket`: a JWT in `Authorization: Bearer` exchanged for a one-time
 * connection ticket, with CORS for the allowed origins.
 *
 * @module
 */
import type { AuditSink } from "../../audit.ts";
import type { Principal, TokenVerifier } from "../../core/auth.ts";
import type { AuthConfig } from "../../config.ts";
import { MAX_ORIGIN_LENGTH, originAllowed } from "../handshake.ts";
import { apiError, bearer, json } from "../common.ts";
import type { Counters } from "../../metrics.ts";
import type { RateLimiter } from "../../core/rate_limiter.ts";
import { retryAfter, StoreUnavailableError } from "../../store/types.ts";
import type { TicketStore } from "../../store/tickets/types.ts";
import { challenge, reasonOf, recordAuthFailure } from "./_auth_failure.ts";

/** What the ticket routes need. */
export interface TicketRouteDeps {
  /** `ALLOWED_ORIGINS` and `TICKET_BIND_ORIGIN`. */
  auth: Pick<AuthConfig, "allowedOrigins" | "tickets">;
  verifier: TokenVerifier;
  tickets: TicketStore;
  /** The per-IP handshake limiter: a ticket request is a handshake in two steps. */
  limiter: RateLimiter;
  audit: AuditSink;
  counters: Counters;
}

/** The `/ticket` handlers: `issue` for POST, `preflight` for OPTIONS. */
export interface TicketRoutes {
  issue(req: Request, ip: string): Promise<Response>;
  preflight(req: Request): Response;
}

/** Builds the `/ticket` handlers. */
export function ticketRoutes(deps: TicketRouteDeps): TicketRoutes {
  const { auth, verifier, tickets, limiter, audit, counters } = deps;

  function corsHeaders(origin: string | null): Record<string, string> {
    if (origin === null || auth.allowedOrigins === undefined) return {};
    if (!originAllowed(origin, null, auth.allowedOrigins)) return {};
    return { "access-control-allow-origin": origin, vary: "Origin" };
  }

  return {
    async issue(req, ip) {
      const origin = req.headers.get("origin");
      const host = req.headers.get("host");
      // The ticket keeps the Origin and the audit line copies it: both stay small.
      if ((origin?.length ?? 0) > MAX_ORIGIN_LENGTH || (host?.length ?? 0) > MAX_ORIGIN_LENGTH) {
        return apiError(400, "bad_request", `Origin or Host longer than ${MAX_ORIGIN_LENGTH}`);
      }
      const cors = corsHeaders(origin);
      if (!originAllowed(origin, host, auth.allowedOrigins)) {
        return apiError(403, "forbidden", "origin not allowed");
      }
      const wait = limiter.take(ip);
      if (wait > 0) {
        return apiError(429, "rate_limited", "too many requests", {
          ...cors,
          "retry-after": String(Math.ceil(wait / 1000)),
        });
      }
      const token = bearer(req);
      if (token === null) {
        recordAuthFailure(audit, counters, "missing", ip, "ticket_request");
        return apiError(401, "unauthorized", "missing bearer token", {
          ...cors,
          "www-authenticate": challenge("missing"),
        });
      }
      let principal: Principal;
      try {
        principal = await verifier.verify(token);
      } catch (err) {
        const reason = reasonOf(err);
        recordAuthFailure(audit, counters, reason, ip, "ticket_request");
        return apiError(401, "unauthorized", "invalid token", {
          ...cors,
          "www-authenticate": challenge(reason),
        });
      }
      let issued;
      try {
        issued = await tickets.issue(principal, auth.tickets.bindOrigin ? origin : null);
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) throw err;
        return apiError(503, "unavailable", "ticket store unavailable", {
          ...cors,
          ...retryAfter(err),
        });
      }
      if (issued === null) {
        return apiError(503, "unavailable", "too many outstanding tickets", cors);
      }
      audit.record("ticket_issued", { user: principal.userId, ip, origin });
      return json(200, issued, cors);
    },

    preflight(req) {
      const cors = corsHeaders(req.headers.get("origin"));
      if (!("access-control-allow-origin" in cors)) return new Response(null, { status: 403 });
      return new Response(null, {
        status: 204,
        headers: {
          ...cors,
          "access-control-allow-methods": "POST",
          "access-control-allow-headers": "authorization, content-type",
          "access-control-max-age": "600",
        },
      });
    },
  };
}
