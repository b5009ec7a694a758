/**
 * `GET /api/admin/stats`: the admin page's feed, one JSON snapshot of this
 * isolate per call (see `lib/http/admin/stats.ts`), behind the same authorization
 * as `POST /api/publish`.
 *
 * @module
 */
import type { AdminStatsOptions } from "../admin/stats.ts";
import { AdminStatsSource } from "../admin/stats.ts";
import { apiError, json } from "../common.ts";
import type { AdminAuthDeps } from "./_admin_auth.ts";
import { adminAuthorizer, adminEnabled } from "./_admin_auth.ts";

/** What the stats route needs: who may ask, and where the figures come from. */
export type AdminStatsRouteDeps = AdminAuthDeps & AdminStatsOptions;

/**
 * Builds the `GET /api/admin/stats` handler (the router answers other
 * methods): 404 unless `API_KEY` or `ADMIN_ROLE` is configured, then 401/403
 * as for `POST /api/publish`.
 */
export function adminStatsRoute(
  deps: AdminStatsRouteDeps,
): (req: Request, ip: string) => Promise<Response> {
  const enabled = adminEnabled(deps.admin);
  const authorize = adminAuthorizer(deps);
  const source = new AdminStatsSource(deps);
  return async (req, ip) => {
    if (!enabled) {
      return apiError(404, "not_found", "the admin API is disabled: set API_KEY or ADMIN_ROLE");
    }
    const caller = await authorize(req, ip, "admin_stats");
    if (caller instanceof Response) return caller;
    return json(200, source.snapshot());
  };
}
