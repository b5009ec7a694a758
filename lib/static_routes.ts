/**
 * Static routes: the browser client module and the demo page.
 *
 * @module
 */
import type { Config } from "./config.ts";

/** A GET route handler. */
export type Route = (req: Request) => Response | Promise<Response>;

/** Builds the static routes for this config. */
export function staticRoutes(_config: Config): Promise<Record<string, Route>> {
  return Promise.resolve({});
}
