/**
 * The route table on a real server: `404` for an unknown path, `405` with
 * `Allow` listing a path's methods, `503` for a draining route's writes only,
 * `HEAD` only where a route lists it, and `500` for a handler that throws.
 *
 * @module
 */
import assert from "node:assert/strict";
import { denoUpgrade } from "../lib/edge/types.ts";
import { createRouter } from "../lib/http/router.ts";
import { startServer, type TestServer } from "./_helpers.ts";

const API_KEY = "router-test-api-key-0123456789-abcdef";
const ORIGIN = "https://app.example";

function start(): Promise<TestServer> {
  return startServer({ API_KEY, ALLOWED_ORIGINS: ORIGIN }, {
    routes: {
      "/page": () => new Response("a page", { headers: { "content-type": "text/plain" } }),
      "/boom": () => {
        throw new Error("boom");
      },
    },
  });
}

async function call(
  ts: TestServer,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: string }> {
  const res = await fetch(`${ts.httpUrl}${path}`, { method, headers });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

const admin = { authorization: `Bearer ${API_KEY}` };

Deno.test("an unknown path is 404 with the API error, whatever the method", async () => {
  await using ts = await start();
  for (const method of ["GET", "POST", "DELETE"]) {
    const res = await call(ts, method, "/nope");
    assert.equal(res.status, 404, method);
    assert.deepEqual(JSON.parse(res.body), { error: { code: "not_found", message: "not found" } });
  }
});

Deno.test("a known path with another method is 405 with Allow listing its methods", async () => {
  await using ts = await start();
  const cases: [string, string, string, string][] = [
    ["PUT", "/api/revoke", "GET, POST, DELETE", "use GET, POST or DELETE"],
    ["GET", "/api/publish", "POST", "use POST"],
    ["GET", "/ticket", "POST, OPTIONS", "use POST or OPTIONS"],
    ["POST", "/api/admin/stats", "GET", "use GET"],
    ["POST", "/healthz", "GET", "use GET"],
    ["DELETE", "/metrics", "GET", "use GET"],
    ["POST", "/page", "GET, HEAD", "use GET or HEAD"],
  ];
  for (const [method, path, allow, message] of cases) {
    const res = await call(ts, method, path, admin);
    assert.equal(res.status, 405, `${method} ${path}`);
    assert.equal(res.headers.get("allow"), allow, `${method} ${path}`);
    assert.deepEqual(JSON.parse(res.body), { error: { code: "method_not_allowed", message } });
  }
  // The handshake endpoint refuses in plain text, as every handshake refusal does.
  const ws = await call(ts, "POST", "/ws");
  assert.equal(ws.status, 405);
  assert.equal(ws.headers.get("allow"), "GET");
  assert.match(ws.headers.get("content-type") ?? "", /^text\/plain/);
  assert.equal(ws.body, "use GET\n");
  assert.equal(ts.audit.of("auth_failure").length, 0, "a 405 never reaches the route's auth");
});

Deno.test("HEAD is answered only where a route lists it", async () => {
  await using ts = await start();
  const page = await call(ts, "HEAD", "/page");
  assert.equal(page.status, 200);
  assert.equal(page.body, "");
  assert.equal(page.headers.get("content-type"), "text/plain");
  const health = await call(ts, "HEAD", "/healthz");
  assert.equal(health.status, 405);
  assert.equal(health.headers.get("allow"), "GET");
  assert.equal((await call(ts, "GET", "/page")).body, "a page");
});

Deno.test("while draining, draining routes refuse writes with 503; reads and preflights still answer", async () => {
  await using ts = await start();
  await ts.server.shutdown({ graceMs: 0 });
  for (
    const [method, path] of [["POST", "/api/publish"], ["POST", "/api/revoke"], [
      "DELETE",
      "/api/revoke",
    ], ["POST", "/ticket"]]
  ) {
    const res = await call(ts, method!, path!, admin);
    assert.equal(res.status, 503, `${method} ${path}`);
    assert.deepEqual(JSON.parse(res.body), {
      error: { code: "unavailable", message: "server is shutting down" },
    });
  }
  assert.equal((await call(ts, "GET", "/api/revoke", admin)).status, 200, "a read still answers");
  assert.equal((await call(ts, "GET", "/api/admin/stats", admin)).status, 200);
  assert.equal((await call(ts, "GET", "/healthz")).status, 200);
  assert.equal((await call(ts, "GET", "/page")).status, 200);
  const preflight = await call(ts, "OPTIONS", "/ticket", {
    origin: ORIGIN,
    "access-control-request-method": "POST",
  });
  assert.equal(preflight.status, 204, "a CORS preflight is a read");
  assert.equal((await call(ts, "PUT", "/api/revoke", admin)).status, 405, "405 before 503");
  // The handshake drains in its own gate, with its own refusal.
  const ws = await call(ts, "GET", "/ws", { upgrade: "websocket" });
  assert.equal(ws.status, 503);
  assert.equal(ws.body, "server is shutting down\n");
});

Deno.test("a handler that throws is a generic 500 and an internal_error audit record", async () => {
  await using ts = await start();
  const res = await call(ts, "GET", "/boom");
  assert.equal(res.status, 500);
  assert.deepEqual(JSON.parse(res.body), {
    error: { code: "internal", message: "internal error" },
  });
  assert.deepEqual(ts.audit.of("internal_error").map((r) => [r.error, r.path]), [[
    "boom",
    "/boom",
  ]]);
});

Deno.test("a table with two routes on one path, or a route without methods, is refused", () => {
  const options = {
    draining: () => false,
    trustProxy: false,
    onError() {},
    defaultUpgrade: denoUpgrade,
  };
  const handler = () => new Response();
  assert.throws(
    () =>
      createRouter([
        { path: "/a", methods: ["GET"], drains: false, handler },
        { path: "/a", methods: ["POST"], drains: false, handler },
      ], options),
    TypeError,
  );
  assert.throws(
    () => createRouter([{ path: "/a", methods: [], drains: false, handler }], options),
    TypeError,
  );
});

Deno.test("a path with {name} segments matches one decoded segment each; literal paths first", async () => {
  const seen: Record<string, string>[] = [];
  const handler = (_req: Request, ctx: { params: Readonly<Record<string, string>> }) => {
    seen.push({ ...ctx.params });
    return new Response("ok");
  };
  const router = createRouter([
    { path: "/apps/{appId}/channels/{name}", methods: ["GET"], drains: false, handler },
    { path: "/apps/{appId}/events", methods: ["POST"], drains: true, handler },
    {
      path: "/apps/literal/events",
      methods: ["GET"],
      drains: false,
      handler: () => new Response("lit"),
    },
  ], { draining: () => true, trustProxy: false, onError() {}, defaultUpgrade: denoUpgrade });
  const call = (method: string, path: string) =>
    router(new Request(`http://localhost${path}`, { method }));
  assert.equal((await call("GET", "/apps/1/channels/presence-a%3Bb")).status, 200);
  assert.deepEqual(seen.at(-1), { appId: "1", name: "presence-a;b" });
  assert.equal(await (await call("GET", "/apps/literal/events")).text(), "lit");
  for (
    const path of [
      "/apps/1/channels/",
      "/apps//channels/x",
      "/apps/1/channels/x/y",
      "/apps/1/channels/%E0",
    ]
  ) {
    assert.equal((await call("GET", path)).status, 404, path);
  }
  const wrong = await call("GET", "/apps/1/events");
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "POST");
  assert.equal((await call("POST", "/apps/1/events")).status, 503, "a draining write");
  assert.equal(seen.length, 1);
});
