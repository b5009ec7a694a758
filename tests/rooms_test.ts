import assert from "node:assert/strict";
import { compilePattern, RoomPolicy } from "../lib/core/room_policy.ts";
import { connectAs, FakeClock, join, sleep, startServer, writePolicy } from "./_helpers.ts";

Deno.test("patterns: * is any run, {sub} is literal, everything else exact", () => {
  assert.ok(compilePattern("chat:*", "a").test("chat:general"));
  assert.ok(compilePattern("chat:*", "a").test("chat:"));
  assert.ok(!compilePattern("chat:*", "a").test("chatter"));
  assert.ok(compilePattern("user:{sub}", "alice").test("user:alice"));
  assert.ok(!compilePattern("user:{sub}", "alice").test("user:bob"));
  assert.ok(!compilePattern("user:{sub}", "a*").test("user:abc"), "a * in sub is not a wildcard");
  assert.ok(!compilePattern("a.b", "x").test("aXb"), "dots are literal");
});

Deno.test("join allowed by rooms claim, {sub} rooms, denied otherwise (default deny)", async () => {
  await using ts = await startServer();
  const alice = await connectAs(ts, "alice", { rooms: ["chat:*", "user:{sub}"] });
  await join(alice, "chat:general");
  await join(alice, "user:alice");
  const denied = await alice.request({ type: "join", room: "user:bob", id: "1" });
  assert.deepEqual(denied, {
    type: "error",
    code: "forbidden",
    message: "you may not join this room",
    id: "1",
    room: "user:bob",
  });
  const unlisted = await alice.request({ type: "join", room: "secret", id: "2" });
  assert.equal(unlisted.code, "forbidden");
  const nobody = await connectAs(ts, "nobody", { rooms: [] });
  assert.equal(
    (await nobody.request({ type: "join", room: "chat:x", id: "3" })).code,
    "forbidden",
  );
  assert.equal(ts.audit.of("deny").length, 3);
  await alice.close();
  await nobody.close();
});

Deno.test("rooms_readonly claim: join but not publish", async () => {
  await using ts = await startServer();
  const reader = await connectAs(ts, "reader", { rooms: [], roomsReadonly: ["news"] });
  await join(reader, "news");
  const r = await reader.request({ type: "message", room: "news", payload: 1, id: "p" });
  assert.equal(r.code, "forbidden");
  assert.equal(r.message, "this room is read-only for you");
  await reader.close();
});

Deno.test("policy file: public, listed users, read-only with named publishers, patterns", async () => {
  await using policy = await writePolicy([
    { room: "lobby", users: "*" },
    { room: "team:alpha", users: ["alice", "bob"] },
    { room: "announcements", users: "*", publishers: ["editor"] },
    { room: "project:*:{sub}", users: "*" },
  ]);
  await using ts = await startServer({ ROOM_POLICY: policy.path });
  const alice = await connectAs(ts, "alice", { rooms: [] });
  const carol = await connectAs(ts, "carol", { rooms: [] });
  const editor = await connectAs(ts, "editor", { rooms: [] });
  await join(alice, "lobby");
  await join(carol, "lobby");
  await join(alice, "team:alpha");
  assert.equal(
    (await carol.request({ type: "join", room: "team:alpha", id: "t" })).code,
    "forbidden",
  );
  await join(carol, "announcements");
  await join(editor, "announcements");
  assert.equal(
    (await carol.request({ type: "message", room: "announcements", payload: "hi", id: "m" }))
      .code,
    "forbidden",
  );
  assert.equal(
    (await editor.request({ type: "message", room: "announcements", payload: "hi", id: "m" }))
      .type,
    "ack",
  );
  await join(carol, "project:x:carol");
  assert.equal(
    (await carol.request({ type: "join", room: "project:x:alice", id: "p" })).code,
    "forbidden",
  );
  for (const c of [alice, carol, editor]) await c.close();
});

Deno.test("policy file errors are clear", () => {
  assert.throws(() => RoomPolicy.parse("{"), /Cannot parse room policy/);
  assert.throws(
    () => RoomPolicy.parse(JSON.stringify({ rooms: [{ room: "x", users: "everyone" }] })),
    /rule 1 \(room "x"\): users: must be "\*"/,
  );
  assert.throws(
    () => RoomPolicy.parse(JSON.stringify({ rooms: [{ room: "x", typo: 1 }] })),
    /rule 1 \(room "x"\): Unrecognized key: "typo"/,
  );
});

Deno.test("a bad ROOM_POLICY fails createServer naming the variable", async () => {
  await assert.rejects(
    startServer({ ROOM_POLICY: "/nonexistent/policy.json" }),
    /ROOM_POLICY: cannot read/,
  );
});

Deno.test("delivery only to members, sender included, with from and ts", async () => {
  await using ts = await startServer();
  const alice = await connectAs(ts, "alice");
  const bob = await connectAs(ts, "bob");
  const eve = await connectAs(ts, "eve");
  await join(alice, "room:a");
  await join(bob, "room:a");
  await join(eve, "room:b");
  const ack = await alice.request({
    type: "message",
    room: "room:a",
    payload: { text: "hi" },
    id: "m1",
  });
  assert.deepEqual(ack, { type: "ack", id: "m1" });
  for (const c of [alice, bob]) {
    const m = await c.nextOf("message");
    assert.equal(m.room, "room:a");
    assert.deepEqual(m.payload, { text: "hi" });
    assert.equal(m.from, "alice");
    assert.ok(typeof m.ts === "number" && Math.abs(m.ts - Date.now()) < 5000);
  }
  await eve.request({ type: "ping", id: "sync" }); // everything sent before this has arrived
  assert.equal(eve.inbox.filter((m) => m.type === "message").length, 0);
  const notJoined = await eve.request({ type: "message", room: "room:a", payload: 1, id: "x" });
  assert.equal(notJoined.code, "not_joined");
  for (const c of [alice, bob, eve]) await c.close();
});

Deno.test("leave stops delivery; leaving a room not joined is not_joined; join is idempotent", async () => {
  await using ts = await startServer();
  const a = await connectAs(ts, "a");
  const b = await connectAs(ts, "b");
  await join(a, "r");
  await join(a, "r");
  await join(b, "r");
  assert.deepEqual(await a.request({ type: "leave", room: "r", id: "l" }), {
    type: "left",
    room: "r",
    id: "l",
  });
  assert.equal((await a.request({ type: "leave", room: "r", id: "l2" })).code, "not_joined");
  await b.request({ type: "message", room: "r", payload: "after", id: "m" });
  await a.request({ type: "ping", id: "sync" });
  assert.equal(a.inbox.filter((m) => m.type === "message").length, 0);
  assert.equal(ts.server.stats().rooms, 1);
  await b.request({ type: "leave", room: "r", id: "l3" });
  assert.equal(ts.server.stats().rooms, 0, "an empty room is deleted");
  await a.close();
  await b.close();
});

Deno.test("MAX_ROOMS_PER_CONNECTION: too_many_rooms", async () => {
  await using ts = await startServer({ MAX_ROOMS_PER_CONNECTION: "2" });
  const a = await connectAs(ts, "a");
  await join(a, "r1");
  await join(a, "r2");
  const r = await a.request({ type: "join", room: "r3", id: "3" });
  assert.equal(r.code, "too_many_rooms");
  await a.request({ type: "leave", room: "r1", id: "l" });
  await join(a, "r3");
  await a.close();
});

Deno.test("nothing stays behind after 1000 connect/join/disconnect cycles", async () => {
  const clock = new FakeClock();
  await using ts = await startServer(
    { MAX_CONNECTIONS_PER_USER: "1000", HANDSHAKES_PER_MINUTE_PER_IP: "100000" },
    { clock },
  );
  const batch = 50;
  for (let i = 0; i < 1000; i += batch) {
    const clients = await Promise.all(
      Array.from({ length: batch }, (_, k) => connectAs(ts, `user-${(i + k) % 100}`)),
    );
    await Promise.all(clients.map((c, k) => join(c, `room-${k % 10}`)));
    clients[0]!.send({ type: "message", room: "room-0", payload: "x" });
    await Promise.all(clients.map((c) => c.close()));
  }
  const deadline = Date.now() + 3000;
  while (ts.server.stats().connections > 0 && Date.now() < deadline) {
    await sleep(10);
  }
  const stats = ts.server.stats();
  assert.equal(stats.connections, 0);
  assert.equal(stats.rooms, 0);
  assert.equal(stats.users, 0);
  assert.equal(ts.server.health().rooms, 0);
  assert.equal(clock.pending, 1, "no timer left but the housekeeping sweep");
  assert.ok(stats.limiterKeys > 0, "buckets outlive connections until they refill");
  clock.advance(60_000);
  assert.equal(ts.server.stats().limiterKeys, 0, "idle full buckets are evicted");
  assert.equal(ts.server.stats().handshakeLimiterKeys, 0);
});
