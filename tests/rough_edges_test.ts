/**
 * The newcomer's rough edges of issue 21, each pinned by a test that fails
 * without its fix: what the README promises is what the server does, and
 * every dead end says what to do.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MemoryAuditSink } from "../lib/audit.ts";
import { ConfigError, configErrorLines, loadConfig } from "../lib/config.ts";
import { configure, getLogger, type LogRecord, reset } from "@logtape/logtape";
import { jsonLine, textLine } from "../lib/log.ts";
import { RoomPolicy } from "../lib/core/room_policy.ts";
import { staticRoutes } from "../lib/http/static_routes.ts";
import { createServer } from "../lib/server.ts";
import {
  collectRoom,
  connectAs,
  join,
  SECRET,
  sleep,
  startServer,
  type TestServer,
} from "./_helpers.ts";

const API_KEY = "rough-edges-api-key-0123456789abcdef";

async function publishApi(ts: TestServer, body: unknown): Promise<Response> {
  return await fetch(`${ts.httpUrl}/api/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test("edge 2: idempotencyKey in a room without history answers 200 duplicate, delivered once", async () => {
  await using ts = await startServer({ API_KEY });
  const c = await connectAs(ts, "reader");
  await join(c, "live");
  const got = collectRoom(c, "live");
  const first = await publishApi(ts, { room: "live", payload: "once", idempotencyKey: "k1" });
  assert.equal(first.status, 202);
  assert.deepEqual(await first.json(), { recipients: 1 });
  const again = await publishApi(ts, { room: "live", payload: "once", idempotencyKey: "k1" });
  assert.equal(again.status, 200);
  assert.deepEqual(await again.json(), { recipients: 0, duplicate: true });
  // The same key in another room, and another key in this room, are new publishes.
  const elsewhere = await publishApi(ts, { room: "other", payload: 1, idempotencyKey: "k1" });
  assert.equal(elsewhere.status, 202);
  await elsewhere.body?.cancel();
  const next = await publishApi(ts, { room: "live", payload: "two", idempotencyKey: "k2" });
  assert.equal(next.status, 202);
  await next.body?.cancel();
  // server.publish shares the rule.
  await ts.server.publish("live", "srv", { idempotencyKey: "s" });
  const dup = await ts.server.publish("live", "srv", { idempotencyKey: "s" });
  assert.equal(dup.duplicate, true);
  await sleep(100);
  assert.deepEqual(got.map((m) => m.payload), ["once", "two", "srv"]);
  await c.close();
});

Deno.test("edge 5: GET / without DEMO=1 and /admin without API_KEY say how to turn them on", async () => {
  const config = loadConfig({ JWT_SECRET: SECRET, PORT: "0", BUS: "memory" });
  const server = await createServer({
    config,
    audit: new MemoryAuditSink(),
    routes: await staticRoutes(config),
  });
  try {
    const page = await server.handler(new Request("http://localhost/"));
    assert.equal(page.status, 404);
    assert.equal(page.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.match(await page.text(), /DEMO=1/);
    const admin = await server.handler(new Request("http://localhost/admin"));
    assert.equal(admin.status, 404);
    assert.match(await admin.text(), /API_KEY.*ADMIN_ROLE/);
    const head = await server.handler(new Request("http://localhost/", { method: "HEAD" }));
    assert.equal(head.status, 404);
    assert.equal(await head.text(), "");
  } finally {
    await server.close();
  }
});

Deno.test("edge 6: room policy errors name the rule from one, its room, and the expected shape", () => {
  const problem = (rooms: unknown[]) => {
    try {
      RoomPolicy.parse(JSON.stringify({ rooms }));
      return "accepted";
    } catch (err) {
      return (err as Error).message;
    }
  };
  assert.equal(
    problem([{ room: "a", users: "*" }, { room: "lobby", users: "alice" }]),
    'Cannot load room policy: rule 2 (room "lobby"): users: must be "*" (every ' +
      'authenticated user) or an array of user ids, e.g. ["alice","bob"]',
  );
  assert.match(
    problem([{ room: "feed", history: true }]),
    /^Cannot load room policy: rule 1 \(room "feed"\): history: must be false or \{"size"/,
  );
  // A rule no room name can match is refused, not silently kept.
  assert.match(
    problem([{ room: "lob by", users: "*" }]),
    /^Cannot load room policy: rule 1 \(room "lob by"\): room: matches no room: room names/,
  );
  assert.equal(
    problem([{ room: "user:{sub}:*", users: "*" }, { room: "~app~ch", hook: true }]),
    "accepted",
  );
});

Deno.test("edge 7: REDIS_URL with another scheme names the scheme it needs", () => {
  try {
    loadConfig({ JWT_SECRET: SECRET, BUS: "redis", REDIS_URL: "http://127.0.0.1:6379" });
    assert.fail("accepted");
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(configErrorLines(err), [
      "config error: REDIS_URL: must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379",
    ]);
  }
});

Deno.test("edge 7: JSON log lines carry the rendered message; text lines keep every field", async () => {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { capture: (r) => void records.push(r) },
    loggers: [
      { category: ["edges"], lowestLevel: "debug", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  try {
    const log = getLogger(["edges"]);
    log.error("bus error: {message}", { message: "connection refused", room: "lobby" });
    log.warning("bus_error", { reason: "redis down", attempt: 3 });
    log.info("listening", { hostname: "127.0.0.1", port: 8000 });
  } finally {
    await reset();
  }
  const [busError, audit, listening] = records;
  const json = JSON.parse(jsonLine(busError!));
  assert.equal(json.msg, "bus error: connection refused");
  assert.equal(json.room, "lobby");
  assert.match(textLine(busError!), /\[ERR\] edges: bus error: connection refused room=lobby\n$/);
  assert.match(textLine(audit!), /\[WRN\] edges: bus_error reason="redis down" attempt=3\n$/);
  assert.match(textLine(listening!), /\[INF\] edges: listening hostname=127\.0\.0\.1 port=8000\n$/);
});
