/**
 * `/client.js` and the demo page over HTTP: headers, ETag revalidation, HEAD,
 * the CSP's script hash, and `/` only in demo mode. The page's behaviour in a
 * browser is tested in browser_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MemoryAuditSink } from "../lib/audit.ts";
import { loadConfig } from "../lib/config.ts";
import { createServer } from "../lib/server.ts";
import type { RealtimeServer } from "../lib/server.ts";
import { ifNoneMatchHits, inlineScriptHashes, staticRoutes } from "../lib/http/static_routes.ts";
import { SECRET } from "./_helpers.ts";

const CLIENT_JS = new URL("../web/client/client.js", import.meta.url);
const BASE = "http://127.0.0.1:8000";

async function withServer(
  env: Record<string, string>,
  fn: (server: RealtimeServer) => Promise<void>,
): Promise<void> {
  const config = loadConfig({ PORT: "0", BUS: "memory", ...env });
  const server = await createServer({
    config,
    audit: new MemoryAuditSink(),
    routes: await staticRoutes(config),
  });
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

function get(server: RealtimeServer, path: string, init: RequestInit = {}): Promise<Response> {
  return server.handler(new Request(`${BASE}${path}`, init));
}

Deno.test("GET /client.js serves the bundle as a cacheable ES module", async () => {
  await withServer({ JWT_SECRET: SECRET }, async (server) => {
    const res = await get(server, "/client.js");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(res.headers.get("cache-control"), "public, max-age=300");
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.match(res.headers.get("etag") ?? "", /^"[A-Za-z0-9+/]{43}"$/);
    assert.equal(await res.text(), await Deno.readTextFile(CLIENT_JS));
  });
});

Deno.test("GET /client.js answers 304 to a matching If-None-Match", async () => {
  await withServer({ JWT_SECRET: SECRET }, async (server) => {
    const first = await get(server, "/client.js");
    await first.body?.cancel();
    const etag = first.headers.get("etag") ?? "";
    for (const header of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
      const res = await get(server, "/client.js", { headers: { "if-none-match": header } });
      assert.equal(res.status, 304, header);
      assert.equal(await res.text(), "");
      assert.equal(res.headers.get("etag"), etag);
      assert.equal(res.headers.get("cache-control"), "public, max-age=300");
    }
    const changed = await get(server, "/client.js", { headers: { "if-none-match": '"stale"' } });
    assert.equal(changed.status, 200);
    await changed.body?.cancel();
  });
});

Deno.test("HEAD /client.js has the headers and no body", async () => {
  await withServer({ JWT_SECRET: SECRET }, async (server) => {
    const res = await get(server, "/client.js", { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(
      res.headers.get("content-length"),
      String((await Deno.readFile(CLIENT_JS)).byteLength),
    );
    assert.equal(await res.text(), "");
  });
});

Deno.test("GET / is the demo page only in demo mode; /client.js always", async () => {
  await withServer({ JWT_SECRET: SECRET }, async (server) => {
    const page = await get(server, "/");
    assert.equal(page.status, 404);
    await page.body?.cancel();
    const client = await get(server, "/client.js");
    assert.equal(client.status, 200);
    await client.body?.cancel();
  });
  await withServer({ JWT_SECRET: SECRET, DEMO: "1" }, async (server) => {
    const page = await get(server, "/");
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(await page.text(), /import \{ connect \} from "\/client\.js"/);
  });
});

Deno.test("the demo page's CSP allows exactly its own inline script", async () => {
  await withServer({ DEMO: "1" }, async (server) => {
    const res = await get(server, "/");
    const html = await res.text();
    const csp = res.headers.get("content-security-policy") ?? "";
    const directives = new Map(
      csp.split(";").map((d) => d.trim().split(/\s+/)).map(([name, ...v]) => [name, v]),
    );
    assert.deepEqual(directives.get("default-src"), ["'self'"]);
    assert.deepEqual(directives.get("connect-src"), ["'self'", "ws:", "wss:"]);
    assert.deepEqual(directives.get("img-src"), ["'self'", "data:"]);
    assert.deepEqual(directives.get("frame-ancestors"), ["'none'"]);
    const scripts = directives.get("script-src") ?? [];
    assert.ok(!scripts.includes("'unsafe-inline'"), csp);
    const hashes = await inlineScriptHashes(html);
    assert.equal(hashes.length, 1);
    assert.deepEqual(scripts, ["'self'", ...hashes]);
    // Cross-check the hash against an independent computation of the script text.
    const body = /<script type="module">([\s\S]*?)<\/script>/.exec(html)?.[1] ?? "";
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body));
    assert.equal(hashes[0], `'sha256-${btoa(String.fromCharCode(...new Uint8Array(digest)))}'`);
    assert.equal(res.headers.get("cache-control"), "no-cache");
  });
});

Deno.test("ifNoneMatchHits compares weakly and understands lists and *", () => {
  assert.equal(ifNoneMatchHits(null, '"a"'), false);
  assert.equal(ifNoneMatchHits('"a"', '"a"'), true);
  assert.equal(ifNoneMatchHits('W/"a"', '"a"'), true);
  assert.equal(ifNoneMatchHits('"b" , "a"', '"a"'), true);
  assert.equal(ifNoneMatchHits('"b"', '"a"'), false);
  assert.equal(ifNoneMatchHits("*", '"a"'), true);
});

Deno.test("staticRoutes fails at start-up when the bundle is missing", async () => {
  const config = loadConfig({ JWT_SECRET: SECRET, PORT: "0" });
  await assert.rejects(
    staticRoutes(config, { clientUrl: new URL("file:///nonexistent/client.js") }),
    (err: unknown) => err instanceof TypeError && /deno task build:client/.test(err.message),
  );
});
