/**
 * `GET /metrics`: Prometheus text, optionally behind `METRICS_TOKEN`.
 *
 * @module
 */
import { apiError, bearer, secretsEqual } from "../common.ts";
import type { Metrics } from "../../metrics.ts";

/** Builds the handler; with a `token`, callers need `Authorization: Bearer <token>`. */
export function metricsRoute(
  metrics: Metrics,
  token: string | undefined,
): (req: Request) => Promise<Response> {
  return async (req) => {
    if (token !== undefined) {
      const given = bearer(req);
      if (given === null || !secretsEqual(given, token)) {
        return apiError(401, "unauthorized", "metrics need the METRICS_TOKEN bearer", {
          "www-authenticate": 'Bearer realm="metrics"',
        });
      }
    }
    return new Response(await metrics.render(), {
      headers: { "content-type": metrics.contentType, "cache-control": "no-store" },
    });
  };
}
