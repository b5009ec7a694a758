/**
 * Presence on one server: members per user, batching at the trailing edge,
 * `info` from the token, large rooms, the `presence` request, the end of
 * presence on every path, and nothing left behind.
 *
 * @module
 */
import assert from "node:assert/strict";
import { BroadcastChannelBus } from "../lib/bus/broadcast_channel.ts";
import { MemoryBus, MemoryHub } from "../lib/bus/memory.ts";
import { NodeLiveness } from "../lib/core/liveness.ts";
import { type PresenceEvent, PresenceTracker } from "../lib/core/presence/mod.ts";
import { loadConfig } from "../lib/config.ts";
import { encodePresence } from "../lib/protocols/native/protocol.ts";
import { RoomPolicy } from "../lib/core/room_policy.ts";
import { MemoryPresenceStore } from "../lib/store/presence/memory.ts";
import { parseEntry } from "../lib/store/presence/types.ts";
import {
  type Client,
  connectAs,
  eventually,
  FakeClock,
  join,
  type Msg,
  rawHandshake,
  rawWebSocket,
  SECRET,
  sendRawText,
  sleep,
  startServer,
  token,
  writePolicy,
} from "./_helpers.ts";

const ENV = { PRESENCE: "1", PRESENCE_DIFF_MS: "100", RATE_LIMIT_CAPACITY: "100000" };

type Member = { userId: string; info?: Record<string, unknown>; connections: number };

/** Joins and returns the `presence_state` that follows `joined`. */
async function joinPresence(client: Client, room: string): Promise<Msg> {
  await join(client, room);
  return await client.nextOf("presence_state");
}

function members(state: Msg): Member[] {
  return state.members as Member[];
}

function diffs(client: Client): Msg[] {
  const out = client.inbox.filter((m) => m.type === "presence_diff");
  client.inbox.splice(
    0,
    client.inbox.length,
    ...client.inbox.filter((m) => m.type !== "presence_diff"),
  );
  return out;
}

/** Every frame `client` receives from now on, as the text on the wire. */
function rawFrames(client: Client): string[] {
  const out: string[] = [];
  client.ws.addEventListener("message", (e) => out.push(...String(e.data).split("\n")));
  return out;
}

Deno.test("wire: presence events encode to the frames presence always sent, byte for byte", () => {
  const info = { name: "B" };
  assert.equal(
    encodePresence({
      kind: "snapshot",
      room: "r",
      entries: [{ userId: "a", connections: 2 }, { userId: "b", info, connections: 1 }],
      count: 2,
      truncated: false,
    }),
    '{"type":"presence_state","room":"r","members":[{"userId":"a","connections":2},' +
      '{"userId":"b","info":{"name":"B"},"connections":1}],"count":2}',
  );
  assert.equal(
    encodePresence({
      kind: "snapshot",
      room: "r",
      requestId: "q",
      entries: [{ userId: "a", connections: 1 }],
      count: 3,
      truncated: true,
    }),
    '{"type":"presence_state","room":"r","id":"q","members":[{"userId":"a","connections":1}],' +
      '"count":3,"truncated":true}',
  );
  assert.equal(
    encodePresence({
      kind: "delta",
      room: "r",
      joined: [{ userId: "a" }, { userId: "b", info }],
      left: ["c"],
      count: 2,
    }),
    '{"type":"presence_diff","room":"r","joins":[{"userId":"a"},{"userId":"b","info":{"name":"B"}}],' +
      '"leaves":[{"userId":"c"}],"count":2}',
  );
  assert.equal(
    encodePresence({ kind: "delta", room: "r", joined: [], left: [], count: 1001 }),
    '{"type":"presence_diff","room":"r","joins":[],"leaves":[],"count":1001}',
  );
});

Deno.test("wire: a member's presence frames over a real socket, byte for byte", async () => {
  const ts = await startServer(ENV);
  try {
    const alice = await connectAs(ts, "alice", { info: { name: "A" } });
    const raw = rawFrames(alice);
    await joinPresence(alice, "wire");
    const bob = await connectAs(ts, "bob");
    await joinPresence(bob, "wire");
    await alice.nextOf("presence_diff");
    await alice.request({ type: "presence", room: "wire", id: "p" });
    await bob.close();
    await alice.nextOf("presence_diff");
    const a = '{"userId":"alice","info":{"name":"A"},"connections":1}';
    assert.deepEqual(raw.filter((f) => f.includes('"presence_')), [
      `{"type":"presence_state","room":"wire","members":[${a}],"count":1}`,
      '{"type":"presence_diff","room":"wire","joins":[{"userId":"bob"}],"leaves":[],"count":2}',
      `{"type":"presence_state","room":"wire","id":"p","members":[${a},` +
      '{"userId":"bob","connections":1}],"count":2}',
      '{"type":"presence_diff","room":"wire","joins":[],"leaves":[{"userId":"bob"}],"count":1}',
    ]);
    await alice.close();
  } finally {
    await ts.close();
  }
});

Deno.test("two tabs of one user are one member with 2 connections; only the last close leaves", async () => {
  await using ts = await startServer(ENV);
  const watcher = await connectAs(ts, "watcher");
  const first = await joinPresence(watcher, "lobby");
  assert.deepEqual(members(first), [{ userId: "watcher", connections: 1 }]);
  assert.equal(first.count, 1);

  const tab1 = await connectAs(ts, "alice");
  const tab2 = await connectAs(ts, "alice");
  await joinPresence(tab1, "lobby");
  const state2 = await joinPresence(tab2, "lobby");
  const alice = members(state2).find((m) => m.userId === "alice");
  assert.equal(alice?.connections, 2);
  assert.equal(state2.count, 2);

  const joined = await watcher.nextOf("presence_diff");
  assert.deepEqual(joined.joins, [{ userId: "alice" }]);
  assert.deepEqual(joined.leaves, []);
  assert.equal(joined.count, 2);

  await tab1.close();
  await sleep(300);
  assert.deepEqual(diffs(watcher), [], "closing one of two tabs sends no leave");
  const asked = await watcher.request({ type: "presence", room: "lobby", id: "p1" });
  assert.equal(asked.type, "presence_state");
  assert.equal(members(asked).find((m) => m.userId === "alice")?.connections, 1);

  await tab2.close();
  const left = await watcher.nextOf("presence_diff");
  assert.deepEqual(left.leaves, [{ userId: "alice" }]);
  assert.deepEqual(left.joins, []);
  assert.equal(left.count, 1);
  await sleep(300);
  assert.deepEqual(diffs(watcher), [], "exactly one leave");
  await watcher.close();
});

Deno.test("batching: 50 users joining within 100 ms reach a member in at most 2 diffs", async () => {
  await using ts = await startServer({ ...ENV, PRESENCE_DIFF_MS: "250" });
  const watcher = await connectAs(ts, "watcher");
  await joinPresence(watcher, "storm");
  const users = await Promise.all(
    Array.from({ length: 50 }, (_, i) => connectAs(ts, `user-${i}`)),
  );
  const started = performance.now();
  for (const [i, c] of users.entries()) c.send({ type: "join", room: "storm", id: `j${i}` });
  const spread = performance.now() - started;
  assert.ok(spread < 100, `the joins went out within 100 ms (took ${spread})`);
  await eventually(() => {
    const seen = watcher.inbox.filter((m) => m.type === "presence_diff");
    return seen.length > 0 && seen.at(-1)!.count === 51;
  }, 5000);
  await sleep(400);
  const got = diffs(watcher);
  assert.ok(got.length <= 2, `${got.length} diffs`);
  const joined = new Set(
    got.flatMap((d) => (d.joins as { userId: string }[]).map((j) => j.userId)),
  );
  assert.equal(joined.size, 50);
  for (const c of users) await c.close();
  await eventually(() => diffs(watcher).some((d) => d.count === 1), 5000);
  await watcher.close();
});

Deno.test("a reconnecting tab within the window is invisible to others; a joiner never hears its own join", async () => {
  await using ts = await startServer({ ...ENV, PRESENCE_DIFF_MS: "300" });
  const watcher = await connectAs(ts, "watcher");
  await joinPresence(watcher, "room");
  const bob = await connectAs(ts, "bob");
  const bobState = await joinPresence(bob, "room");
  assert.deepEqual(members(bobState).map((m) => m.userId).sort(), ["bob", "watcher"]);
  await watcher.nextOf("presence_diff");

  // Bob's tab reloads: leave and join again inside one window.
  await bob.close();
  const again = await connectAs(ts, "bob");
  await joinPresence(again, "room");
  await sleep(700);
  assert.deepEqual(diffs(watcher), [], "a leave and join of one user in one window cancel out");
  assert.deepEqual(diffs(again).filter((d) => (d.joins as Msg[]).length > 0), []);
  await again.close();
  await watcher.close();
});

Deno.test("info: the token's info claim is shown to others; a non-object or oversized info is refused with 401", async () => {
  await using ts = await startServer(ENV);
  const watcher = await connectAs(ts, "watcher");
  await joinPresence(watcher, "lobby");
  const info = { name: "Alice", avatar: "https://example.com/a.png" };
  const alice = await connectAs(ts, "alice", { info });
  const state = await joinPresence(alice, "lobby");
  assert.deepEqual(members(state).find((m) => m.userId === "alice"), {
    userId: "alice",
    info,
    connections: 1,
  });
  const diff = await watcher.nextOf("presence_diff");
  assert.deepEqual(diff.joins, [{ userId: "alice", info }]);

  // null counts as absent.
  const nobody = await connectAs(ts, "nobody", { info: null });
  const nobodyState = await joinPresence(nobody, "lobby");
  assert.deepEqual(members(nobodyState).find((m) => m.userId === "nobody"), {
    userId: "nobody",
    connections: 1,
  });

  for (const bad of ["Alice", ["Alice"], 42, { name: "x".repeat(1100) }]) {
    const t = await token("mallory", { info: bad });
    const res = await rawHandshake(ts.port, `/ws?token=${t}`);
    assert.equal(res.status, 401, JSON.stringify(bad).slice(0, 40));
    assert.equal(res.body.trim(), "invalid token");
  }
  const reasons = ts.audit.of("auth_failure").map((f) => f.reason);
  assert.deepEqual(reasons, ["bad_claims", "bad_claims", "bad_claims", "bad_claims"]);
  for (const c of [watcher, alice, nobody]) await c.close();
});

Deno.test("large rooms: a truncated state and count-only diffs at most once per second", async () => {
  await using ts = await startServer({ ...ENV, PRESENCE_MAX_MEMBERS: "5", PRESENCE_DIFF_MS: "50" });
  const watcher = await connectAs(ts, "watcher");
  await joinPresence(watcher, "big");
  const others: Client[] = [];
  for (let i = 0; i < 8; i++) {
    const c = await connectAs(ts, `u${i}`);
    c.send({ type: "join", room: "big", id: "j" });
    others.push(c);
    await sleep(40);
  }
  await eventually(() => ts.server.stats().connections === 9, 3000);
  const late = await connectAs(ts, "late");
  const state = await joinPresence(late, "big");
  assert.equal(state.count, 10);
  assert.equal(state.truncated, true);
  assert.equal(members(state).length, 5);
  assert.equal(members(state)[0]!.userId, "watcher", "the earliest joined are listed");

  // Churn for ~2.5 s: every 50 ms window has a change, yet count-only diffs come ≤ 1/s.
  diffs(watcher);
  const stamps: number[] = [];
  watcher.ws.addEventListener("message", (e) => {
    if (String(e.data).includes('"presence_diff"')) stamps.push(performance.now());
  });
  for (let i = 0; i < 25; i++) {
    const c = await connectAs(ts, `churn${i}`);
    c.send({ type: "join", room: "big", id: "j" });
    await sleep(100);
    await c.close();
  }
  await sleep(1200);
  const got = diffs(watcher);
  assert.ok(got.length >= 2, `${got.length} count-only diffs`);
  for (const d of got) {
    assert.deepEqual(d.joins, []);
    assert.deepEqual(d.leaves, []);
  }
  for (let i = 1; i < stamps.length; i++) {
    assert.ok(
      stamps[i]! - stamps[i - 1]! >= 900,
      `diffs ${stamps[i]! - stamps[i - 1]!} ms apart`,
    );
  }
  assert.equal(got.at(-1)!.count, 10);

  // Back under the limit: a full state again, then named diffs.
  for (const c of others.splice(0, 6)) await c.close();
  const fresh = await watcher.nextOf("presence_state", 4000);
  assert.equal(fresh.count, 4);
  assert.equal(fresh.truncated, undefined);
  for (const c of [...others, late, watcher]) await c.close();
});

Deno.test("the presence request: not_joined first, bad_request without presence, the id echoed", async () => {
  await using policy = await writePolicy([
    { room: "quiet:*", presence: false },
    { room: "*", presence: true },
    { room: "quiet:loud", presence: true },
  ]);
  await using ts = await startServer({ ...ENV, PRESENCE: "0", ROOM_POLICY: policy.path });
  const c = await connectAs(ts, "alice");
  const notJoined = await c.request({ type: "presence", room: "quiet:loud", id: "a" });
  assert.equal(notJoined.code, "not_joined");
  await join(c, "quiet:loud");
  const none = await c.request({ type: "presence", room: "quiet:loud", id: "b" });
  assert.equal(none.code, "bad_request", "the first matching rule that sets presence decides");
  const state = await joinPresence(c, "chat");
  assert.equal(state.count, 1);
  const again = await c.request({ type: "presence", room: "chat", id: "c" });
  assert.equal(again.type, "presence_state");
  assert.equal(again.id, "c");
  assert.equal(c.inbox.filter((m) => m.type === "presence_state").length, 0);
  await c.close();
});

Deno.test("presence ends on every path: leave, close, server close, heartbeat timeout, revocation", async () => {
  await using ts = await startServer({ ...ENV, PRESENCE_DIFF_MS: "30", HEARTBEAT_MS: "1000" });
  const watcherTs = ts;
  const watcher = await connectAs(watcherTs, "watcher");
  await joinPresence(watcher, "r");
  const expectLeave = async (userId: string) => {
    const d = await watcher.next((m) =>
      m.type === "presence_diff" && (m.leaves as Msg[]).some((l) => l.userId === userId)
    );
    assert.equal(d.count, 1);
  };

  const leaver = await connectAs(ts, "leaver");
  await joinPresence(leaver, "r");
  await leaver.request({ type: "leave", room: "r", id: "l" });
  await expectLeave("leaver");

  const closer = await connectAs(ts, "closer");
  await joinPresence(closer, "r");
  await closer.close();
  await expectLeave("closer");

  // Too big a frame: the server closes the socket (1009).
  const big = await connectAs(ts, "big");
  await joinPresence(big, "r");
  big.send("x".repeat(70_000));
  await big.closed;
  await expectLeave("big");

  // A peer that stops answering pings: the idle timeout ends it.
  const silent = await rawWebSocket(ts.port, `/ws?token=${await token("silent")}`);
  await sendRawText(silent, '{"type":"join","room":"r"}');
  await watcher.next((m) =>
    m.type === "presence_diff" && (m.joins as Msg[]).some((j) => j.userId === "silent")
  );
  await expectLeave("silent");
  silent.close();

  // A refresh whose token no longer grants the room: revoked.
  const revoked = await connectAs(ts, "revoked", { rooms: ["r"] });
  await joinPresence(revoked, "r");
  const narrower = await token("revoked", { rooms: ["other"] });
  revoked.send({ type: "refresh", token: narrower, id: "rf" });
  const left = await revoked.nextOf("left");
  assert.equal(left.reason, "revoked");
  await expectLeave("revoked");
  await revoked.close();

  assert.equal(ts.server.presence?.count("r"), 1);
  await watcher.close();
  await eventually(() => ts.server.presence?.stats().rooms === 0, 2000);
});

Deno.test("after 1,000 join/leave cycles no presence entry or timer is left", async () => {
  const store = new MemoryPresenceStore();
  await using ts = await startServer({ ...ENV, PRESENCE_DIFF_MS: "10" }, { presence: store });
  const watcher = await connectAs(ts, "watcher");
  await joinPresence(watcher, "stay");
  const c = await connectAs(ts, "cycler");
  for (let i = 0; i < 1000; i++) {
    const room = i % 2 === 0 ? "stay" : `r${i % 10}`;
    c.send({ type: "join", room, id: `j${i}` });
    c.send({ type: "leave", room, id: `l${i}` });
  }
  await c.next((m) => m.id === "l999", 10_000);
  await c.close();
  await eventually(() => ts.server.presence?.stats().rooms === 1, 3000);
  await sleep(100);
  assert.deepEqual(ts.server.presence?.stats(), { rooms: 1, users: 1, timers: 0, instances: 0 });
  await watcher.close();
  await eventually(() => ts.server.presence?.stats().rooms === 0, 3000);
  assert.deepEqual(ts.server.presence?.stats(), { rooms: 0, users: 0, timers: 0, instances: 0 });
  assert.equal(store.size, 0);
});

Deno.test("config: PRESENCE, its settings, dev mode turns it on unless PRESENCE is set", () => {
  const base = { JWT_SECRET: SECRET };
  assert.equal(loadConfig(base).presence.enabled, false);
  assert.equal(loadConfig({ ...base, PRESENCE: "1" }).presence.enabled, true);
  assert.equal(loadConfig({}).presence.enabled, true, "dev mode");
  assert.equal(loadConfig({ PRESENCE: "0" }).presence.enabled, false);
  const c = loadConfig({
    ...base,
    PRESENCE_DIFF_MS: "100",
    PRESENCE_MAX_MEMBERS: "50",
    PRESENCE_TTL_MS: "5000",
  });
  assert.deepEqual(c.presence, { enabled: false, diffMs: 100, maxMembers: 50, ttlMs: 5000 });
  assert.throws(() => loadConfig({ ...base, PRESENCE_TTL_MS: "10" }), /PRESENCE_TTL_MS/);
  const policy = RoomPolicy.parse(
    '{"rooms":[{"room":"a:*","presence":false},{"room":"*","presence":true}]}',
  );
  assert.equal(policy.presenceFor("a:1", true), false);
  assert.equal(policy.presenceFor("b", false), true);
  assert.equal(RoomPolicy.parse('{"rooms":[]}').presenceFor("b", true), true);
  assert.throws(() => RoomPolicy.parse('{"rooms":[{"room":"*","presence":"yes"}]}'), /presence/);
});

Deno.test("broadcast: a new isolate asks for state; one not heard from for PRESENCE_TTL_MS is dropped", async () => {
  const channel = `presence-${crypto.randomUUID()}`;
  const env = { ...ENV, PRESENCE_TTL_MS: "1500" };
  const busA = new BroadcastChannelBus({ channel });
  const busB = new BroadcastChannelBus({ channel });
  await using a = await startServer(env, { bus: busA });
  await using b = await startServer(env, { bus: busB });
  const alice = await connectAs(a, "alice");
  await joinPresence(alice, "hall");
  // Bob's isolate has never heard of the room: it asks, and its state catches up.
  const bob = await connectAs(b, "bob");
  await joinPresence(bob, "hall");
  await eventually(() => b.server.presence?.count("hall") === 2, 3000, "bob's isolate at 2");
  await eventually(() => a.server.presence?.count("hall") === 2, 3000, "alice's isolate at 2");

  // Bob's isolate falls silent (as if killed): no leave is ever announced.
  await busB.close();
  const started = performance.now();
  const left = await alice.next(
    (m) => m.type === "presence_diff" && (m.leaves as Msg[]).some((l) => l.userId === "bob"),
    5000,
  );
  const waited = performance.now() - started;
  assert.equal(left.count, 1);
  assert.ok(waited > 1000, `bob was dropped after ${waited} ms, not before the TTL`);
  assert.equal(a.server.presence?.stats().instances, 0);
  await alice.close();
  await bob.close();
});

Deno.test("liveness: a node heard within the TTL is alive, a silent one is forgotten", async () => {
  const clock = new FakeClock();
  const hub = new MemoryHub();
  const options = { room: "$live", kind: "live", frame: "{}", ttlMs: 1000, clock };
  const busA = new MemoryBus({ hub, instanceId: "a" });
  const busB = new MemoryBus({ hub, instanceId: "b" });
  const a = new NodeLiveness({ ...options, bus: busA });
  const b = new NodeLiveness({ ...options, bus: busB });
  busA.onEnvelope((envelope) => {
    if (envelope.kind === "live") a.seen(envelope.origin);
  });
  await a.start();
  await b.start();
  try {
    assert.deepEqual(a.alive(["b"]), new Set());
    b.beat();
    clock.advance(999);
    assert.deepEqual(a.alive(["b", "c"]), new Set(["b"]));
    b.beat();
    clock.advance(999);
    assert.deepEqual(a.alive(["b"]), new Set(["b"]), "each beat renews the TTL");
    clock.advance(1);
    assert.deepEqual(a.alive(["b"]), new Set());
    assert.equal(a.size, 0);
  } finally {
    await a.close();
    await b.close();
    await busA.close();
    await busB.close();
  }
});

Deno.test("announcements from other nodes are validated: a malformed one changes nothing", async () => {
  const clock = new FakeClock();
  const bus = new MemoryBus({ instanceId: "here" });
  const store = new MemoryPresenceStore({ clock });
  const tracker = new PresenceTracker({ bus, store, enabled: () => true, diffMs: 10, clock });
  const events: PresenceEvent[] = [];
  const member = {
    userId: "alice",
    presenceInfo: undefined,
    presence: (e: PresenceEvent) => events.push(e),
  };
  const hear = (frame: string) =>
    tracker.receive({ origin: "there", seq: 1, room: "r", frame, kind: "presence" });
  try {
    tracker.join("r", member);
    clock.advance(10);
    assert.equal(events.at(-1)?.kind, "snapshot");
    for (
      const frame of [
        "not json",
        '{"t":"u","u":5,"c":1}',
        '{"t":"u","u":"bob","c":"1"}',
        '{"t":"u","u":"bob","c":1,"i":[1]}',
        '{"t":"s","r":true,"m":[["bob",1,"x"]]}',
        '{"t":"zz"}',
      ]
    ) hear(frame);
    assert.equal(tracker.count("r"), 1);
    hear('{"t":"u","u":"bob","c":1,"i":{"name":"B"}}');
    assert.equal(tracker.count("r"), 2);
    clock.advance(10);
    assert.deepEqual(events.at(-1), {
      kind: "delta",
      room: "r",
      joined: [{ userId: "bob", info: { name: "B" } }],
      left: [],
      count: 2,
    });
    tracker.leave("r", member);
  } finally {
    await tracker.close();
    await store.close();
    await bus.close();
  }
});

Deno.test("stored entries are validated when read back: a foreign or corrupt one is skipped", () => {
  assert.deepEqual(parseEntry('{"connections":2}'), { connections: 2 });
  assert.deepEqual(parseEntry('{"connections":1,"info":{"n":1}}'), {
    info: { n: 1 },
    connections: 1,
  });
  for (const text of ["x", "null", '{"connections":0}', '{"connections":1,"info":"x"}']) {
    assert.equal(parseEntry(text), undefined, text);
  }
});
