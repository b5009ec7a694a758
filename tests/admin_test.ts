/**
 * The admin page's server side: `/admin` and its assets exist only with
 * `API_KEY` or `ADMIN_ROLE`, under a strict CSP; `GET /api/admin/stats` is
 * authorized like `POST /api/publish` and reports what real connections do;
 * the busiest-rooms ranking and its rates (with a fake clock).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { AdminStats } from "../lib/http/admin/stats.ts";
import { AdminStatsSource } from "../lib/http/admin/stats.ts";
import { loadConfig } from "../lib/config.ts";
import { Counters } from "../lib/metrics.ts";
import type { RoomActivity } from "../lib/core/rooms.ts";
import { staticRoutes } from "../lib/http/static_routes.ts";
import { connectAs, eventually, FakeClock, join, sleep, startServer, token } from "./_helpers.ts";
import type { TestServer } from "./_helpers.ts";

const API_KEY = "admin-key-0123456789-0123456789-0123456789";

async function stats(ts: TestServer, credential?: string): Promise<Response> {
  return await fetch(`${ts.httpUrl}/api/admin/stats`, {
    headers: credential === undefined ? {} : { authorization: `Bearer ${credential}` },
  });
}

async function statsJson(ts: TestServer, credential = API_KEY): Promise<AdminStats> {
  const res = await stats(ts, credential);
  assert.equal(res.status, 200);
  return await res.json() as AdminStats;
}

async function startAdmin(env: Record<string, string> = { API_KEY }): Promise<TestServer> {
  const config = loadConfig({ JWT_SECRET: "x".repeat(32), ...env });
  return await startServer(env, { routes: await staticRoutes(config) });
}

Deno.test("without API_KEY or ADMIN_ROLE: /admin, its assets and the feed are 404", async () => {
  await using ts = await startAdmin({});
  for (const path of ["/admin", "/admin/admin.js", "/admin/admin.css", "/api/admin/stats"]) {
    const res = await fetch(`${ts.httpUrl}${path}`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    await res.body?.cancel();
    assert.equal(res.status, 404, path);
  }
});

Deno.test("/admin: strict CSP, no inline code, assets with ETags", async () => {
  await using ts = await startAdmin();
  const page = await fetch(`${ts.httpUrl}/admin`);
  const html = await page.text();
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  const csp = page.headers.get("content-security-policy")!;
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/, "no inline script, no eval");
  assert.match(csp, /style-src 'self'(;|$)/, "no inline style");
  assert.match(csp, /form-action 'none'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(page.headers.get("x-frame-options"), "DENY");
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, "every script is external");
  assert.doesNotMatch(html, /<style|\sstyle=/i, "no inline style");
  assert.match(html, /src="\/admin\/admin.js"/);
  assert.match(html, /href="\/admin\/admin.css"/);
  for (
    const [path, type] of [["/admin/admin.js", /^text\/javascript/], [
      "/admin/admin.css",
      /^text\/css/,
    ]] as const
  ) {
    const res = await fetch(`${ts.httpUrl}${path}`);
    const body = await res.text();
    assert.equal(res.status, 200, path);
    assert.match(res.headers.get("content-type")!, type);
    assert.ok(body.length > 1000, `${path} has content`);
    const etag = res.headers.get("etag")!;
    const again = await fetch(`${ts.httpUrl}${path}`, { headers: { "if-none-match": etag } });
    await again.body?.cancel();
    assert.equal(again.status, 304, path);
  }
  const script = await (await fetch(`${ts.httpUrl}/admin/admin.js`)).text();
  // The bundle is self-contained: nothing fetched from elsewhere (no CDN), no eval.
  assert.doesNotMatch(script, /^\s*import\s/m);
  assert.doesNotMatch(script, /https?:\/\/(?!github\.com\/leeoniya)[a-z]/i);
  assert.doesNotMatch(script, /\beval\(|new Function\(/);
  assert.doesNotMatch(script, /localStorage|sessionStorage|document\.cookie/);
});

Deno.test("the feed is authorized like the publish API and audits refusals", async () => {
  await using ts = await startAdmin({ API_KEY, ADMIN_ROLE: "admin" });
  await using onlyRole = await startAdmin({ ADMIN_ROLE: "admin" });
  const missing = await stats(ts);
  await missing.body?.cancel();
  assert.equal(missing.status, 401);
  assert.equal(missing.headers.get("www-authenticate"), 'Bearer realm="realtime"');
  const wrong = await stats(ts, "w".repeat(40));
  assert.equal(wrong.status, 401);
  assert.equal((await wrong.json()).error.code, "unauthorized");
  assert.deepEqual(ts.audit.of("auth_failure").map((f) => [f.reason, f.source]), [
    ["bad_api_key", "admin_stats"],
  ]);
  const user = await stats(ts, await token("u"));
  assert.equal(user.status, 403);
  assert.match((await user.json()).error.message, /admin role/);
  const badJwt = await stats(ts, await token("ops", { roles: ["admin"], ttlSec: -10 }));
  await badJwt.body?.cancel();
  assert.equal(badJwt.status, 401);
  assert.equal((await statsJson(ts)).instanceId, ts.server.instanceId);
  const admin = await token("ops", { roles: ["admin"] });
  assert.equal((await statsJson(ts, admin)).instanceId, ts.server.instanceId);
  assert.equal((await statsJson(onlyRole, admin)).instanceId, onlyRole.server.instanceId);
  const post = await fetch(`${ts.httpUrl}/api/admin/stats`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}` },
  });
  await post.body?.cancel();
  assert.equal(post.status, 405);
  // The admin's wrong key also shows on the page's own feed.
  assert.equal((await statsJson(ts)).keyed.authFailures?.bad_api_key, 1);
});

Deno.test("the feed reports real connections, traffic, closes and the busiest rooms", async () => {
  await using ts = await startAdmin();
  const before = await statsJson(ts);
  assert.equal(before.connections, 0);
  assert.equal(before.bus.transport, "memory");
  assert.equal(typeof before.at, "number");
  assert.deepEqual(before.busiest.byMembers, []);
  const a = await connectAs(ts, "a");
  const b = await connectAs(ts, "b");
  const c = await connectAs(ts, "c");
  await join(a, "big");
  await join(b, "big");
  await join(c, "big");
  await join(a, "chatty");
  for (let i = 0; i < 5; i++) a.send({ type: "message", room: "chatty", payload: i });
  for (let i = 0; i < 5; i++) await a.next((m) => m.type === "message" && m.payload === i);
  const now = await statsJson(ts);
  assert.equal(now.connections, 3);
  assert.equal(now.rooms, 2);
  assert.equal(now.counters.joins, 4);
  assert.equal(now.counters.messagesIn! - before.counters.messagesIn!, 9);
  assert.ok(now.counters.bytesOut! > before.counters.bytesOut!);
  // The ranking is refreshed at most once a second (several open pages share one walk).
  let ranked: AdminStats | undefined;
  await eventually(
    async () => {
      ranked = await statsJson(ts);
      return ranked.busiest.byMembers.length === 2;
    },
    3000,
    "a fresh ranking",
  );
  assert.deepEqual(
    ranked!.busiest.byMembers.map((r) => [r.room, r.members]),
    [["big", 3], ["chatty", 1]],
  );
  // The second walk of the rooms, a second later, turns message counts into rates.
  await sleep(1000);
  for (let i = 5; i < 8; i++) a.send({ type: "message", room: "chatty", payload: i });
  await a.next((m) => m.type === "message" && m.payload === 7);
  const later = await statsJson(ts);
  assert.ok(later.busiest.intervalMs >= 900);
  assert.deepEqual(later.busiest.byRate.map((r) => r.room), ["chatty"]);
  assert.ok(later.busiest.byRate[0]!.perSec > 0);
  await c.close();
  await eventually(async () => (await statsJson(ts)).connections === 2, 3000, "the close");
  const closed = await statsJson(ts);
  assert.equal(closed.keyed.closes?.["1000"], 1);
  assert.equal(closed.counters.leaves, 1);
  await a.close();
  await b.close();
});

Deno.test("closes by code: our codes and the protocol's are kept, others are folded", () => {
  assert.equal(Counters.closeLabel(1000), "1000");
  assert.equal(Counters.closeLabel(1006), "1006");
  assert.equal(Counters.closeLabel(4429), "4429");
  assert.equal(Counters.closeLabel(3001), "other");
  assert.equal(Counters.closeLabel(4999), "other");
});

Deno.test("AdminStatsSource: top rooms bounded, rates per interval, sections, new counters", () => {
  const clock = new FakeClock(1_000_000);
  const counters = new Counters();
  let rooms: RoomActivity[] = [];
  const source = new AdminStatsSource({
    health: () => ({
      status: "ok",
      uptimeMs: 5,
      connections: 1,
      rooms: rooms.length,
      instanceId: "i-1",
      bus: { status: "ok", transport: "memory", gaps: 0, dropped: 0 },
    }),
    counters,
    activity: () => rooms,
    clock,
    sections: { presence: () => ({ members: 7, store: "memory" }) },
    top: 4,
  });
  rooms = Array.from({ length: 6 }, (_, i) => ({ room: `r${i}`, members: i, messages: 10 * i }));
  const first = source.snapshot();
  assert.deepEqual(first.busiest.byMembers.map((r) => r.room), ["r5", "r4", "r3", "r2"]);
  assert.deepEqual(first.busiest.byRate, [], "no rate before a second sample");
  assert.deepEqual(first.sections, { presence: { members: 7, store: "memory" } });
  // Within the interval the ranking is reused: several open pages cost one walk.
  rooms = rooms.map((r) => ({ ...r, messages: r.messages + 1000 }));
  clock.advance(500);
  assert.equal(source.snapshot().busiest, first.busiest);
  clock.advance(1500);
  // r0 got 1000 more, r1 was dropped and created again (8 < 10), r2 got 10 more, r9 is new.
  rooms = [
    { room: "r0", members: 1, messages: 1000 },
    { room: "r1", members: 1, messages: 8 },
    { room: "r2", members: 1, messages: 30 },
    { room: "r3", members: 1, messages: 30 },
    { room: "r9", members: 1, messages: 12 },
  ];
  const second = source.snapshot();
  assert.equal(second.busiest.intervalMs, 2000);
  assert.deepEqual(second.busiest.byRate.map((r) => [r.room, r.perSec]), [
    ["r0", 500],
    ["r9", 6],
    ["r2", 5],
    ["r1", 4],
  ]);
  // A counter added to Counters by someone else reaches the feed without a change here.
  (counters as unknown as Record<string, number>).historyReads = 3;
  counters.closes.set("1000", 2);
  const third = source.snapshot();
  assert.equal(third.counters.historyReads, 3);
  assert.deepEqual(third.keyed.closes, { "1000": 2 });
  assert.throws(
    () =>
      new AdminStatsSource({
        ...{ health: () => first, counters, clock },
        activity: () => [],
        top: 0,
      }),
    RangeError,
  );
});
