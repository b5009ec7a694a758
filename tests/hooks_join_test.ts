/**
 * The join hook through a whole server and a real backend: a room no claim
 * or rule grants is asked of the backend, which grants it (read-only or
 * not, with presence info); an allow answer is cached for (user, room) so a
 * rejoin and another connection of the user do not call again; a denial or
 * a failed call is `forbidden`, audited.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connectAs, eventually, sleep, startServer } from "./_helpers.ts";
import { answer, startHookBackend } from "./_hook_backend.ts";

const HOOK_SECRET = "hook-secret-that-is-long-enough-012345";

Deno.test("join hook: grants a room no claim grants, and the cache prevents a second call", async () => {
  await using backend = startHookBackend(HOOK_SECRET, (call) => {
    const room = call.json.room;
    if (room === "group:7") {
      return answer({ allow: true, cacheSec: 60, presence: { role: "member" } });
    }
    if (room === "board:1") return answer({ allow: true, readonly: true });
    return answer({ allow: false, reason: "not a member of this group" });
  });
  await using ts = await startServer({
    HOOK_JOIN_URL: `${backend.url}/join`,
    WEBHOOK_SECRET: HOOK_SECRET,
    PRESENCE: "1",
  });
  const alice = await connectAs(ts, "alice", { rooms: ["lobby"] });
  const other = await connectAs(ts, "alice", { rooms: [] });
  try {
    assert.equal((await alice.request({ type: "join", room: "lobby", id: "l" })).type, "joined");
    assert.equal(backend.calls.length, 0, "a claim's room is not asked");
    const joined = await alice.request({ type: "join", room: "group:7", id: "g" });
    assert.equal(joined.type, "joined");
    const [call] = backend.calls;
    assert.ok(call?.signed);
    assert.equal(call.json.room, "group:7");
    assert.equal(call.json.userId, "alice");
    const state = await alice.next((m) => m.type === "presence_state" && m.room === "group:7");
    assert.deepEqual((state.members as { info?: unknown }[])[0]?.info, { role: "member" });
    // Leave and rejoin, and the user's other connection: the cached answer, no call.
    assert.equal((await alice.request({ type: "leave", room: "group:7", id: "x" })).type, "left");
    assert.equal((await alice.request({ type: "join", room: "group:7", id: "g2" })).type, "joined");
    assert.equal((await other.request({ type: "join", room: "group:7", id: "g3" })).type, "joined");
    assert.equal(backend.callsTo("/join").length, 1, "the cache answered twice");
    const ack = await alice.request({ type: "message", room: "group:7", payload: 1, id: "p" });
    assert.equal(ack.type, "ack", "a grant without readonly publishes");
    // readonly: joined, but may not publish; not cached: asked each time.
    assert.equal((await alice.request({ type: "join", room: "board:1", id: "b" })).type, "joined");
    const ro = await alice.request({ type: "message", room: "board:1", payload: 1, id: "bp" });
    assert.equal(ro.code, "forbidden");
    const denied = await alice.request({ type: "join", room: "group:8", id: "d" });
    assert.equal(denied.type, "error");
    assert.equal(denied.code, "forbidden");
    assert.equal(denied.message, "not a member of this group");
    assert.ok(ts.audit.of("deny").some((r) => r.room === "group:8"));
  } finally {
    await alice.close();
    await other.close();
  }
});

Deno.test("join hook: a failed call fails closed with forbidden, audited", async () => {
  await using backend = startHookBackend(HOOK_SECRET, async () => {
    await sleep(600);
    return answer({ allow: true });
  });
  await using ts = await startServer({
    HOOK_JOIN_URL: `${backend.url}/join`,
    WEBHOOK_SECRET: HOOK_SECRET,
    HOOK_TIMEOUT_MS: "200",
  });
  const bob = await connectAs(ts, "bob", { rooms: [] });
  try {
    const reply = await bob.request({ type: "join", room: "group:1", id: "g" });
    assert.equal(reply.type, "error");
    assert.equal(reply.code, "forbidden");
    assert.equal(ts.audit.of("hook_failed")[0]?.failure, "timeout");
    assert.ok(ts.audit.of("deny").some((r) => r.room === "group:1" && r.hook === "hook timeout"));
  } finally {
    await bob.close();
  }
  await sleep(500);
});

Deno.test("join hook: concurrent joins of one user to one room share one call", async () => {
  await using backend = startHookBackend(HOOK_SECRET, async () => {
    await sleep(100);
    return answer({ allow: true });
  });
  await using ts = await startServer({
    HOOK_JOIN_URL: `${backend.url}/join`,
    WEBHOOK_SECRET: HOOK_SECRET,
  });
  const tabs = await Promise.all([1, 2, 3].map(() => connectAs(ts, "dora", { rooms: [] })));
  try {
    const replies = await Promise.all(
      tabs.map((tab, i) => tab.request({ type: "join", room: "group:2", id: `j${i}` })),
    );
    assert.deepEqual(replies.map((r) => r.type), ["joined", "joined", "joined"]);
    assert.equal(backend.callsTo("/join").length, 1, "one call for three joins");
    // Nothing cached (no cacheSec): the next join asks again.
    await tabs[0]!.request({ type: "leave", room: "group:2", id: "l" });
    await tabs[0]!.request({ type: "join", room: "group:2", id: "again" });
    assert.equal(backend.callsTo("/join").length, 2);
  } finally {
    for (const tab of tabs) await tab.close();
  }
});

Deno.test("hooks: closing the server aborts the calls in flight instead of waiting for them", async () => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => release = resolve);
  await using backend = startHookBackend(HOOK_SECRET, async () => {
    await held;
    return answer({ allow: true });
  });
  await using ts = await startServer({
    HOOK_JOIN_URL: `${backend.url}/join`,
    WEBHOOK_SECRET: HOOK_SECRET,
    HOOK_TIMEOUT_MS: "10000",
  });
  try {
    const eve = await connectAs(ts, "eve", { rooms: [] });
    eve.send({ type: "join", room: "group:3", id: "j" });
    await eventually(() => backend.calls.length === 1, 3000, "the call");
    const started = performance.now();
    await ts.close();
    const took = performance.now() - started;
    assert.ok(took < 3000, `closed without waiting for the 10 s timeout (${took.toFixed(0)} ms)`);
    await eventually(
      () => ts.audit.of("hook_failed").some((r) => r.failure === "network"),
      1000,
      "the aborted call",
    );
    await eve.closed;
  } finally {
    // The backend's own shutdown waits for the handler it holds.
    release();
  }
});
