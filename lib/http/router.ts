/**
 * The route table: each path names the methods it answers, whether it stops
 * taking work while the server drains, and its handler. The router answers
 * what no route should write for itself: `404` for an unknown path, `405`
 * with `Allow` for a known path and another method, `503` for a draining
 * route's writes, and `500` (with an `internal_error` audit record) for a
 * handler that throws.
 *
 * A path is literal (`/healthz`) or has whole-segment parameters
 * (`/apps/{appId}/events`): a literal path is found first, then the
 * parameter paths in table order. A parameter matches one non-empty segment,
 * percent-decoded; nothing else (no wildcards, no optional segments: hono's
 * routers show how far that can grow when it is needed).
 *
 * @module
 */
import { clientAddress } from "./handshake.ts";
import { apiError, refuse } from "./common.ts";
import type { Upgrader } from "../edge/types.ts";

/** What the router found out about a request, handed to its route. */
export interface RouteContext {
  /** The parsed request URL. */
  readonly url: URL;
  /** The client's address (the last `X-Forwarded-For` hop when the proxy is trusted). */
  readonly ip: string;
  /** The connection, when the server gives one. */
  readonly info: Deno.ServeHandlerInfo<Deno.Addr> | undefined;
  /** How a WebSocket upgrade is done on this listener. */
  readonly upgrade: Upgrader;
  /** The path's `{name}` segments, percent-decoded (empty for a literal path). */
  readonly params: Readonly<Record<string, string>>;
}

/** Answers a request that matched its route's path and methods. */
export type RouteHandler = (req: Request, ctx: RouteContext) => Response | Promise<Response>;

/** One entry of the table. */
export interface Route {
  /** The exact path, or one with `{name}` segments. */
  readonly path: string;
  /** The methods answered, in the order `Allow` lists them. */
  readonly methods: readonly string[];
  /**
   * While the server drains, this route's writes (every method but `GET`,
   * `HEAD` and `OPTIONS`) answer `503`: reads and CORS preflights still do.
   */
  readonly drains: boolean;
  readonly handler: RouteHandler;
  /**
   * How the router's `405` is written: `json` (the API error shape) or
   * `text`, the one-line refusal of the WebSocket handshake.
   * @default "json"
   */
  readonly refusals?: "json" | "text";
}

/** Options for {@linkcode createRouter}. */
export interface RouterOptions {
  /** Whether the server is draining now. */
  draining(): boolean;
  /** `TRUST_PROXY`: believe `X-Forwarded-For` for {@linkcode RouteContext.ip}. */
  trustProxy: boolean;
  /** Called with what a handler threw; the client gets a generic `500`. */
  onError(err: unknown, path: string): void;
  /** How upgrades are done when the caller gives none. */
  defaultUpgrade: Upgrader;
}

/** The fetch handler a router makes. */
export type RouterHandler = (
  req: Request,
  info?: Deno.ServeHandlerInfo<Deno.Addr>,
  upgrade?: Upgrader,
) => Promise<Response>;

/** Methods that only read: never refused while draining. */
const SAFE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

/** `GET`, `GET or HEAD`, `GET, POST or DELETE`. */
function methodList(methods: readonly string[]): string {
  if (methods.length < 2) return methods.join("");
  return `${methods.slice(0, -1).join(", ")} or ${methods.at(-1)}`;
}

function methodNotAllowed(route: Route): Response {
  const message = `use ${methodList(route.methods)}`;
  const headers = { allow: route.methods.join(", ") };
  return route.refusals === "text"
    ? refuse(405, message, headers)
    : apiError(405, "method_not_allowed", message, headers);
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

/** A path with `{name}` segments, matched segment by segment. */
class PathPattern {
  readonly #segments: readonly ({ literal: string } | { param: string })[];

  constructor(readonly route: Route) {
    this.#segments = route.path.split("/").map((segment) => {
      const param = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(segment)?.[1];
      return param === undefined ? { literal: segment } : { param };
    });
  }

  /** Whether a path has parameters at all. */
  static has(path: string): boolean {
    return /\{[^/]*\}/.test(path);
  }

  /** The parameters when `pathname` matches, else undefined. */
  match(pathname: string): Record<string, string> | undefined {
    const parts = pathname.split("/");
    if (parts.length !== this.#segments.length) return undefined;
    const params: Record<string, string> = {};
    for (let i = 0; i < parts.length; i++) {
      const segment = this.#segments[i]!;
      const part = parts[i]!;
      if ("literal" in segment) {
        if (segment.literal !== part) return undefined;
        continue;
      }
      if (part === "") return undefined;
      try {
        params[segment.param] = decodeURIComponent(part);
      } catch {
        return undefined;
      }
    }
    return params;
  }
}

/**
 * Builds the fetch handler for a route table.
 *
 * @example
 * ```ts ignore
 * const handler = createRouter([
 *   { path: "/healthz", methods: ["GET"], drains: false, handler: () => json(200, health()) },
 *   { path: "/api/publish", methods: ["POST"], drains: true, handler: publish },
 * ], { draining: () => draining, trustProxy: false, onError, defaultUpgrade: denoUpgrade });
 * Deno.serve(handler);
 * ```
 *
 * @throws {TypeError} when two routes share a path, or a route has no method
 */
export function createRouter(routes: readonly Route[], options: RouterOptions): RouterHandler {
  const byPath = new Map<string, Route>();
  const patterns: PathPattern[] = [];
  const seen = new Set<string>();
  for (const route of routes) {
    if (seen.has(route.path)) {
      throw new TypeError(`Cannot add route: current value ${route.path} is already routed`);
    }
    if (route.methods.length === 0) {
      throw new TypeError(`Cannot add route: ${route.path} answers no method`);
    }
    seen.add(route.path);
    if (PathPattern.has(route.path)) patterns.push(new PathPattern(route));
    else byPath.set(route.path, route);
  }
  const find = (pathname: string): [Route, Readonly<Record<string, string>>] | undefined => {
    const route = byPath.get(pathname);
    if (route !== undefined) return [route, NO_PARAMS];
    for (const pattern of patterns) {
      const params = pattern.match(pathname);
      if (params !== undefined) return [pattern.route, params];
    }
    return undefined;
  };
  const { draining, trustProxy, onError, defaultUpgrade } = options;
  return async (req, info, upgrade = defaultUpgrade) => {
    const url = new URL(req.url);
    const found = find(url.pathname);
    try {
      if (found === undefined) return apiError(404, "not_found", "not found");
      const [route, params] = found;
      if (!route.methods.includes(req.method)) return methodNotAllowed(route);
      if (route.drains && !SAFE_METHODS.has(req.method) && draining()) {
        return apiError(503, "unavailable", "server is shutting down");
      }
      const ip = clientAddress(req, info?.remoteAddr, trustProxy);
      return await route.handler(req, { url, ip, info, upgrade, params });
    } catch (err) {
      onError(err, url.pathname);
      return apiError(500, "internal", "internal error");
    }
  };
}
