/**
 * Static routes: the browser client module (`GET /client.js`, always), the
 * demo chat page (`GET /`, only when `config.demo`) and the admin page
 * (`GET /admin` with its script and stylesheet, only when `API_KEY` or
 * `ADMIN_ROLE` is set). Every file is read once at start-up, so a missing
 * file fails the boot rather than a request, and each is served from memory
 * with a strong ETag.
 *
 * `web/client/client.js` is generated from `packages/client/src/client.ts` by
 * `deno task build:client` and committed (outside `lib/`, beside the admin
 * page's bundle, so generated code never sits beside its source): the server cannot transpile
 * TypeScript cheaply at runtime, and `tests/client_bundle_test.ts` fails when
 * the committed bundle is stale.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { adminEnabled } from "./routes/_admin_auth.ts";
import { errorMessage } from "../errors.ts";

/** A GET route handler. */
export type Route = (req: Request) => Response | Promise<Response>;

/** Options for {@linkcode staticRoutes}. */
export interface StaticRoutesOptions {
  /**
   * The bundled client module.
   * @default web/client/client.js in the repository
   */
  clientUrl?: URL;
  /**
   * The demo page.
   * @default lib/http/demo/index.html beside this file
   */
  demoUrl?: URL;
  /**
   * The folder holding the admin page (`index.html`) and its bundle
   * (`admin.js`, `admin.css`, built by `deno task build:admin`).
   * @default web/admin/ in the repository
   */
  adminDir?: URL;
}

/**
 * How long browsers may reuse `/client.js` without asking again. The URL is
 * not versioned, so a deploy is picked up within this time; that staleness
 * adds no new compatibility burden, because tabs left open across a deploy
 * already run the old client against the new server. After it expires, the
 * ETag turns the re-check into a body-less 304.
 */
const CLIENT_CACHE_CONTROL = "public, max-age=300";
/**
 * The page is tiny and its script hash is pinned in the CSP header, so it is
 * always revalidated: a page and a CSP from different deploys must not meet.
 */
const PAGE_CACHE_CONTROL = "no-cache";

/** A file held in memory with its validator. */
interface Asset {
  readonly body: Uint8Array<ArrayBuffer>;
  readonly etag: string;
  readonly headers: Readonly<Record<string, string>>;
}

async function sha256(data: Uint8Array<ArrayBuffer> | string): Promise<Uint8Array> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

async function readAsset(url: URL, what: string): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return await Deno.readFile(url);
  } catch (err) {
    const hint = what === "client module"
      ? " (run deno task build:client)"
      : what.startsWith("admin page's")
      ? " (run deno task build:admin)"
      : "";
    throw new TypeError(
      `Cannot serve the ${what}: cannot read ${url.href}: ${errorMessage(err)}${hint}`,
      { cause: err },
    );
  }
}

async function asset(
  body: Uint8Array<ArrayBuffer>,
  headers: Record<string, string>,
): Promise<Asset> {
  // Strong: the tag is a hash of the exact bytes, so equal tags mean equal bodies.
  const etag = `"${base64(await sha256(body)).replace(/=+$/, "")}"`;
  return { body, etag, headers: { ...headers, etag } };
}

/**
 * Whether an `If-None-Match` header matches `etag`. RFC 9110 §13.1.2 compares
 * weakly here, so `W/"x"` matches `"x"`; `*` matches any existing resource.
 */
export function ifNoneMatchHits(header: string | null, etag: string): boolean {
  if (header === null) return false;
  if (header.trim() === "*") return true;
  const bare = etag.replace(/^W\//, "");
  return header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === bare);
}

function serve(item: Asset): Route {
  return (req) => {
    if (ifNoneMatchHits(req.headers.get("if-none-match"), item.etag)) {
      // A 304 repeats the validator and caching headers (RFC 9110 §15.4.5), not the body's type.
      const { "content-type": _type, ...rest } = item.headers;
      return new Response(null, { status: 304, headers: rest });
    }
    return new Response(req.method === "HEAD" ? null : item.body, {
      headers: { ...item.headers, "content-length": String(item.body.byteLength) },
    });
  };
}

/**
 * The SHA-256 CSP sources of every inline `<script>` in `html`, so the page's
 * CSP allows exactly its own code and no injected script.
 */
export async function inlineScriptHashes(html: string): Promise<string[]> {
  const hashes: string[] = [];
  for (const match of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)) {
    if (/\bsrc\s*=/i.test(match[1] ?? "")) continue;
    hashes.push(`'sha256-${base64(await sha256(match[2] ?? ""))}'`);
  }
  return hashes;
}

/**
 * The demo page's Content-Security-Policy: its own origin for everything,
 * WebSockets for the connection, inline styles, and only the page's own
 * inline scripts (by hash). The directives that do not fall back to
 * `default-src` are closed explicitly.
 */
export function demoCsp(scriptHashes: readonly string[]): string {
  return [
    "default-src 'self'",
    "connect-src 'self' ws: wss:",
    "style-src 'self' 'unsafe-inline'",
    `script-src 'self' ${scriptHashes.join(" ")}`.trim(),
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/**
 * The admin page's Content-Security-Policy: stricter than the demo's, as the
 * page holds an operator credential. Its own script and stylesheet only (no
 * inline code or style at all), fetches to its own origin only, no forms
 * (the login form is handled by the script; should the script fail to load,
 * the browser must not submit the key anywhere).
 */
export function adminCsp(): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** `/admin`, `/admin/admin.js` and `/admin/admin.css`, read from `dir`. */
async function adminRoutes(dir: URL): Promise<Record<string, Route>> {
  // The three files change together on deploy and their URLs are not versioned: always revalidate.
  const common = { "cache-control": PAGE_CACHE_CONTROL, "x-content-type-options": "nosniff" };
  const page = await asset(await readAsset(new URL("index.html", dir), "admin page"), {
    ...common,
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": adminCsp(),
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
  });
  const script = await asset(await readAsset(new URL("admin.js", dir), "admin page's script"), {
    ...common,
    "content-type": "text/javascript; charset=utf-8",
  });
  const style = await asset(await readAsset(new URL("admin.css", dir), "admin page's stylesheet"), {
    ...common,
    "content-type": "text/css; charset=utf-8",
  });
  return {
    "/admin": serve(page),
    "/admin/admin.js": serve(script),
    "/admin/admin.css": serve(style),
  };
}

/** What `GET /` answers when the demo is off: a newcomer following the README lands here. */
export const DEMO_OFF = "404: the demo page is off. Start the server with DEMO=1 to serve it " +
  "here (dev mode, without any JWT_* variable, serves it too). The WebSocket is at /ws; see " +
  "the README's One-minute demo.\n";

/** What `GET /admin` answers when no one may use it. */
export const ADMIN_OFF = "404: the admin page is off. Set API_KEY (32+ characters) or " +
  "ADMIN_ROLE to serve it here; it asks for the key or an admin JWT.\n";

/** A plain-text 404 that says how to turn the page on. */
function explain(text: string): Route {
  const body = new TextEncoder().encode(text);
  return (req) =>
    new Response(req.method === "HEAD" ? null : body, {
      status: 404,
      headers: {
        "content-type": "text/plain; charset=utf-8",
        "content-length": String(body.byteLength),
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
      },
    });
}

/**
 * Builds the static routes for this config: `/client.js` always, `/` when
 * `config.server.demo` is set, `/admin` and its assets when `API_KEY` or
 * `ADMIN_ROLE` is set (otherwise `/` and `/admin` answer a 404 that says how
 * to turn them on). Reads the files now, once.
 *
 * @example
 * ```ts ignore
 * import { createServer } from "../server.ts";
 * import { staticRoutes } from "./static_routes.ts";
 * const server = await createServer({ config, routes: await staticRoutes(config) });
 * ```
 *
 * @param config the server's configuration (`server.demo` and `admin` are read)
 * @param options where the files are; for tests
 * @returns path → handler, for `createServer`'s `routes`
 * @throws {TypeError} when a file cannot be read
 */
export async function staticRoutes(
  config: Pick<Config, "admin" | "server">,
  options: StaticRoutesOptions = {},
): Promise<Record<string, Route>> {
  const {
    clientUrl = new URL("../../web/client/client.js", import.meta.url),
    demoUrl = new URL("./demo/index.html", import.meta.url),
    adminDir = new URL("../../web/admin/", import.meta.url),
  } = options;
  const client = await asset(await readAsset(clientUrl, "client module"), {
    "content-type": "text/javascript; charset=utf-8",
    "cache-control": CLIENT_CACHE_CONTROL,
    // Public code, no credentials: apps on other origins may import it as a module.
    "access-control-allow-origin": "*",
    "x-content-type-options": "nosniff",
  });
  const routes: Record<string, Route> = { "/client.js": serve(client) };
  if (adminEnabled(config.admin)) Object.assign(routes, await adminRoutes(adminDir));
  else routes["/admin"] = explain(ADMIN_OFF);
  if (!config.server.demo) {
    routes["/"] = explain(DEMO_OFF);
    return routes;
  }

  const html = await readAsset(demoUrl, "demo page");
  const hashes = await inlineScriptHashes(new TextDecoder().decode(html));
  const page = await asset(html, {
    "content-type": "text/html; charset=utf-8",
    "cache-control": PAGE_CACHE_CONTROL,
    "content-security-policy": demoCsp(hashes),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
  });
  routes["/"] = serve(page);
  return routes;
}
