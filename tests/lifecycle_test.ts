import assert from "node:assert/strict";
import {
  connect,
  connectAs,
  eventually,
  FakeClock,
  join,
  rawWebSocket,
  sendRawText,
  sleep,
  startServer,
  token,
} from "./_helpers.ts";

Deno.test("heartbeat: a peer that goes silent is dropped and its memberships removed", async () => {
  await using ts = await startServer({ HEARTBEAT_MS: "1000" });
  const conn = await rawWebSocket(ts.port, `/ws?token=${await token("silent")}`);
  await sendRawText(conn, '{"type":"join","room":"r"}');
  await eventually(() => ts.server.stats().rooms === 1, 2000, "the join");
  const lively = await connectAs(ts, "lively");
  await join(lively, "r");
  // The raw peer now neither reads nor answers pings.
  const started = Date.now();
  await eventually(
    () => ts.server.stats().connections === 1,
    6000,
    "the silent peer to be dropped",
  );
  assert.ok(Date.now() - started < 6000);
  assert.equal(ts.server.stats().rooms, 1, "the room stays for the lively member only");
  assert.equal(
    ts.audit.of("disconnect").filter((d) => d.user === "silent").length,
    1,
    "cleanup ran once",
  );
  // The lively client answered pings (Deno's client does) and is still here.
  assert.equal((await lively.request({ type: "ping", id: "p" })).type, "pong");
  conn.close();
  await lively.close();
});

Deno.test("expiry: expiring is sent EXPIRY_WARNING_MS before exp, then close 4401", async () => {
  await using ts = await startServer({ EXPIRY_WARNING_MS: "1000", JWT_CLOCK_TOLERANCE_SEC: "0" });
  const t = await token("alice", { ttlSec: 2 });
  const { client, welcome } = await connect(`${ts.wsUrl}?token=${t}`);
  const expiring = await client.nextOf("expiring", 3000);
  assert.equal(expiring.expiresAt, welcome.expiresAt);
  const closed = await client.closed;
  assert.equal(closed.code, 4401);
  assert.equal(closed.reason, "token expired");
  assert.equal(ts.audit.of("expiry").length, 1);
});

Deno.test("refresh: new expiry and claims; revoked rooms are left; bad token keeps the old expiry", async () => {
  await using ts = await startServer({ EXPIRY_WARNING_MS: "0" });
  const { client, welcome } = await connect(
    `${ts.wsUrl}?token=${await token("alice", { rooms: ["a", "b"], ttlSec: 60 })}`,
  );
  await join(client, "a");
  await join(client, "b");
  const bad = await client.request({ type: "refresh", token: "garbage.token.here", id: "r0" });
  assert.equal(bad.code, "unauthorized");
  const fresh = await token("alice", { rooms: ["a"], ttlSec: 600 });
  const refreshed = await client.request({ type: "refresh", token: fresh, id: "r1" });
  assert.equal(refreshed.type, "refreshed");
  assert.ok(Number(refreshed.expiresAt) > Number(welcome.expiresAt));
  const left = await client.nextOf("left");
  assert.deepEqual(left, { type: "left", room: "b", reason: "revoked" });
  assert.equal(ts.server.stats().rooms, 1);
  assert.equal((await client.request({ type: "join", room: "b", id: "j" })).code, "forbidden");
  await client.close();
});

Deno.test("refresh with another user's token closes 4403", async () => {
  await using ts = await startServer();
  const client = await connectAs(ts, "alice");
  client.send({ type: "refresh", token: await token("mallory"), id: "r" });
  const closed = await client.closed;
  assert.equal(closed.code, 4403);
});

Deno.test("a refresh extends the life of the connection past the first exp", async () => {
  await using ts = await startServer({ EXPIRY_WARNING_MS: "500", JWT_CLOCK_TOLERANCE_SEC: "0" });
  const { client } = await connect(`${ts.wsUrl}?token=${await token("alice", { ttlSec: 1 })}`);
  await client.nextOf("expiring", 2000);
  await client.request({ type: "refresh", token: await token("alice", { ttlSec: 60 }), id: "r" });
  await sleep(1500);
  assert.equal(client.ws.readyState, WebSocket.OPEN);
  await client.close();
});

Deno.test("a 30-day token: one expiring a day before exp, then 4401, with one timer", async () => {
  const clock = new FakeClock();
  const day = 86_400_000;
  await using ts = await startServer({
    EXPIRY_WARNING_MS: String(day),
    JWT_CLOCK_TOLERANCE_SEC: "0",
  }, {
    clock,
  });
  const { client, welcome } = await connect(
    `${ts.wsUrl}?token=${await token("alice", { ttlSec: 30 * 86_400 })}`,
  );
  const expMs = Number(welcome.expiresAt) * 1000;
  assert.equal(clock.pending, 2, "the housekeeping sweep and one session timer");
  clock.advance(expMs - day - clock.now() - 1);
  await client.request({ type: "ping", id: "p1" });
  assert.equal(
    client.inbox.filter((m) => m.type === "expiring").length,
    0,
    "not before its time",
  );
  clock.advance(2);
  await client.nextOf("expiring");
  clock.advance(day - 10);
  await client.request({ type: "ping", id: "p2" });
  assert.equal(client.inbox.filter((m) => m.type === "expiring").length, 0, "sent once");
  clock.advance(10);
  assert.equal((await client.closed).code, 4401);
});
