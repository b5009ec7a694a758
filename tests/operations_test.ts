import assert from "node:assert/strict";
import {
  connect,
  connectAs,
  FakeClock,
  join,
  rawHandshake,
  rawWebSocket,
  sendRawText,
  sleep,
  startServer,
  token,
} from "./_helpers.ts";

const API_KEY = "k".repeat(40);

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

Deno.test("tickets: issued for a JWT, accepted once, bound to user and Origin", async () => {
  await using ts = await startServer({ ALLOWED_ORIGINS: "https://app.example" });
  const t = await token("alice");
  const issued = await post(`${ts.httpUrl}/ticket`, "", {
    authorization: `Bearer ${t}`,
    origin: "https://app.example",
  });
  assert.equal(issued.status, 200);
  assert.equal(issued.headers.get("access-control-allow-origin"), "https://app.example");
  assert.match(issued.body.ticket, /^[A-Za-z0-9_-]{43}$/);
  assert.ok(issued.body.expiresAt > Date.now());
  const { client, welcome } = await connect(`${ts.wsUrl}?ticket=${issued.body.ticket}`, {
    headers: { origin: "https://app.example" },
  });
  assert.equal(welcome.userId, "alice");
  await client.close();
  const replay = await rawHandshake(ts.port, `/ws?ticket=${issued.body.ticket}`, {
    origin: "https://app.example",
  });
  assert.equal(replay.status, 401, "a ticket works once");
  const other = await post(`${ts.httpUrl}/ticket`, "", {
    authorization: `Bearer ${t}`,
    origin: "https://app.example",
  });
  const wrongOrigin = await rawHandshake(ts.port, `/ws?ticket=${other.body.ticket}`);
  assert.equal(wrongOrigin.status, 401, "a ticket from a page is not usable without its Origin");
  assert.equal((await post(`${ts.httpUrl}/ticket`, "")).status, 401);
  assert.equal(
    (await post(`${ts.httpUrl}/ticket`, "", { authorization: "Bearer x.y.z" })).status,
    401,
  );
  const preflight = await fetch(`${ts.httpUrl}/ticket`, {
    method: "OPTIONS",
    headers: { origin: "https://app.example", "access-control-request-method": "POST" },
  });
  assert.equal(preflight.status, 204);
  assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /authorization/);
  await preflight.body?.cancel();
  assert.deepEqual(ts.audit.of("auth_failure").map((f) => f.reason), [
    "ticket_invalid",
    "ticket_origin_mismatch",
    "missing",
    "malformed",
  ]);
});

Deno.test("tickets expire after TICKET_TTL_MS", async () => {
  const clock = new FakeClock();
  await using ts = await startServer({ TICKET_TTL_MS: "5000" }, { clock });
  const issued = await post(`${ts.httpUrl}/ticket`, "", {
    authorization: `Bearer ${await token("a")}`,
  });
  assert.equal(issued.body.expiresAt, clock.now() + 5000);
  clock.advance(5001);
  assert.equal((await rawHandshake(ts.port, `/ws?ticket=${issued.body.ticket}`)).status, 401);
});

Deno.test("publish API: API key, admin role, validation, size, disabled", async () => {
  await using ts = await startServer({ API_KEY, ADMIN_ROLE: "admin", MAX_MESSAGE_BYTES: "1024" });
  await using off = await startServer();
  const a = await connectAs(ts, "a");
  const b = await connectAs(ts, "b");
  await join(a, "news");
  await join(b, "news");
  const url = `${ts.httpUrl}/api/publish`;
  const ok = await post(url, { room: "news", payload: { v: 1 } }, {
    authorization: `Bearer ${API_KEY}`,
  });
  assert.equal(ok.status, 202);
  assert.deepEqual(ok.body, { recipients: 2 });
  const m = await a.nextOf("message");
  assert.deepEqual([m.payload, m.from], [{ v: 1 }, "server"]);
  const admin = await token("ops", { roles: ["admin"] });
  const byAdmin = await post(url, { room: "news", payload: 2 }, {
    authorization: `Bearer ${admin}`,
  });
  assert.equal(byAdmin.status, 202);
  assert.equal((await b.next((x) => x.type === "message" && x.payload === 2)).from, "ops");
  const plain = await token("user");
  const noRole = await post(url, { room: "news", payload: 3 }, {
    authorization: `Bearer ${plain}`,
  });
  assert.equal(noRole.status, 403);
  assert.equal(noRole.body.error.code, "forbidden");
  const wrong = await post(url, { room: "news", payload: 3 }, {
    authorization: `Bearer ${"x".repeat(40)}`,
  });
  assert.equal(wrong.status, 401);
  assert.deepEqual(ts.audit.of("auth_failure").map((f) => [f.reason, f.source]), [
    ["bad_api_key", "publish_api"],
  ]);
  assert.equal((await post(url, { room: "news", payload: 3 })).status, 401);
  const auth = { authorization: `Bearer ${API_KEY}` };
  const notJson = await post(url, "{", auth);
  assert.deepEqual(notJson.body, {
    error: { code: "bad_request", message: "body is not valid JSON" },
  });
  assert.equal((await post(url, { room: "bad room", payload: 1 }, auth)).status, 400);
  assert.equal((await post(url, { room: "news" }, auth)).status, 400);
  assert.equal((await post(url, { room: "news", payload: 1, extra: 1 }, auth)).status, 400);
  const big = await post(url, { room: "news", payload: "x".repeat(2000) }, auth);
  assert.equal(big.status, 413);
  assert.equal(big.body.error.code, "payload_too_large");
  const empty = await post(url, { room: "nobody-here", payload: 1 }, auth);
  assert.deepEqual(empty.body, { recipients: 0 });
  const disabled = await post(`${off.httpUrl}/api/publish`, { room: "r", payload: 1 }, auth);
  assert.equal(disabled.status, 404);
  await a.close();
  await b.close();
});

Deno.test("healthz and metrics (optionally behind METRICS_TOKEN)", async () => {
  await using ts = await startServer({ METRICS_TOKEN: "m".repeat(20) });
  const a = await connectAs(ts, "a");
  await join(a, "r");
  await rawHandshake(ts.port, "/ws?token=bad");
  const health = await (await fetch(`${ts.httpUrl}/healthz`)).json();
  assert.equal(health.status, "ok");
  assert.equal(health.connections, 1);
  assert.equal(health.rooms, 1);
  assert.ok(health.uptimeMs >= 0);
  assert.equal(health.bus.transport, "memory");
  const denied = await fetch(`${ts.httpUrl}/metrics`);
  assert.equal(denied.status, 401);
  await denied.body?.cancel();
  const res = await fetch(`${ts.httpUrl}/metrics`, {
    headers: { authorization: `Bearer ${"m".repeat(20)}` },
  });
  assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
  const text = await res.text();
  assert.match(text, /^realtime_connections 1$/m);
  assert.match(text, /^realtime_rooms 1$/m);
  assert.match(text, /^realtime_joins_total 1$/m);
  assert.match(text, /^realtime_auth_failures_total\{reason="malformed"\} 1$/m);
  assert.match(text, /^realtime_handshake_seconds_count 1$/m);
  assert.match(text, /^realtime_messages_in_total 1$/m);
  await a.close();
});

Deno.test("slow consumer: a client that stops reading is closed once its backlog passes MAX_BUFFERED_BYTES", async () => {
  await using ts = await startServer({ MAX_BUFFERED_BYTES: "65536", MAX_MESSAGE_BYTES: "1048576" });
  const conn = await rawWebSocket(ts.port, `/ws?token=${await token("sleepy")}`);
  await sendRawText(conn, '{"type":"join","room":"flood"}');
  const reader = await connectAs(ts, "reader");
  await join(reader, "flood");
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && ts.server.stats().connections === 2) {
    void ts.server.publish("flood", "x".repeat(60_000));
    await sleep(1);
  }
  assert.equal(ts.server.stats().connections, 1, "the sleepy client was dropped");
  const slow = ts.audit.of("slow_consumer");
  assert.equal(slow.length, 1);
  assert.equal(slow[0]!.user, "sleepy");
  assert.deepEqual(ts.audit.of("disconnect").map((d) => d.code), [1008]);
  assert.equal((await reader.request({ type: "ping", id: "p" })).type, "pong");
  conn.close();
  await reader.close();
});

Deno.test("shutdown: new handshakes get 503, open sockets close 1001", async () => {
  await using ts = await startServer();
  const a = await connectAs(ts, "a");
  const shutdown = ts.server.shutdown({ graceMs: 2000 });
  const closed = await a.closed;
  assert.deepEqual(closed, { code: 1001, reason: "server going away" });
  await shutdown;
  assert.equal((await rawHandshake(ts.port, `/ws?token=${await token("b")}`)).status, 503);
});

Deno.test("SIGTERM: the process closes clients with 1001 and exits 0", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", "main.ts"],
    cwd: new URL("..", import.meta.url).pathname,
    env: {
      JWT_SECRET: (await import("./_helpers.ts")).SECRET,
      PORT: "0",
      HOSTNAME: "127.0.0.1",
      LOG_LEVEL: "error",
      BUS: "memory",
    },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const reader = child.stderr.getReader();
  const decoder = new TextDecoder();
  while (!/Listening on/.test(stderr)) {
    const { value, done } = await reader.read();
    if (done) break;
    stderr += decoder.decode(value);
  }
  const port = Number(/127\.0\.0\.1:(\d+)/.exec(stderr)?.[1]);
  const drain = (async () => {
    for (;;) if ((await reader.read()).done) break;
  })();
  try {
    const { client } = await connect(`ws://127.0.0.1:${port}/ws?token=${await token("a")}`);
    await join(client, "r");
    child.kill("SIGTERM");
    assert.deepEqual(await client.closed, { code: 1001, reason: "server going away" });
    assert.equal((await child.status).code, 0);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await child.status;
    await drain;
  }
});
