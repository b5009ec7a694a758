/**
 * History rooms on one node (memory store): offsets, recovery with `since`,
 * idempotent publish, `history` paging, and the rooms that keep none.
 */
import assert from "node:assert/strict";
import { connect, type Msg, SECRET, sleep, startServer, token, writePolicy } from "./_helpers.ts";
import type { TestServer } from "./_helpers.ts";
import { collectRoom, connectAs, join, joinRoom } from "./_helpers.ts";

const API_KEY = "history-test-api-key-0123456789abcdef";
const HISTORY = { HISTORY_SIZE: "100", API_KEY };

async function publishApi(ts: TestServer, body: unknown): Promise<Response> {
  return await fetch(`${ts.httpUrl}/api/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

Deno.test("history room: offsets start at 1 and go up by one; joined carries the position", async () => {
  await using ts = await startServer(HISTORY);
  const a = await connectAs(ts, "alice");
  const first = await joinRoom(a, "chat");
  assert.equal(first.offset, 0);
  assert.equal(typeof first.epoch, "string");
  for (let i = 1; i <= 3; i++) {
    const ack = await a.request({ type: "message", room: "chat", payload: i, id: `m${i}` });
    assert.deepEqual({ type: ack.type, offset: ack.offset }, { type: "ack", offset: i });
    const m = await a.nextOf("message");
    assert.deepEqual([m.payload, m.offset, m.epoch], [i, i, first.epoch]);
  }
  const b = await connectAs(ts, "bob");
  const second = await joinRoom(b, "chat");
  assert.deepEqual([second.offset, second.epoch], [3, first.epoch]);
  await a.close();
  await b.close();
});

Deno.test("rooms without history behave as before: no offset, no epoch", async () => {
  await using ts = await startServer({ API_KEY: API_KEY });
  const a = await connectAs(ts, "alice");
  const joined = await join(a, "plain");
  assert.deepEqual(Object.keys(joined).sort(), ["id", "room", "type"]);
  const ack = await a.request({ type: "message", room: "plain", payload: 1, id: "p" });
  assert.deepEqual(ack, { type: "ack", id: "p" });
  const m = await a.nextOf("message");
  assert.equal(m.offset, undefined);
  assert.equal(m.epoch, undefined);
  const history = await a.request({ type: "history", room: "plain", id: "h" });
  assert.equal(history.type, "error");
  assert.equal(history.code, "bad_request");
  assert.match(String(history.message), /keeps no history/);
  await a.close();
});

Deno.test("recovery: a client that drops gets exactly the 20 it missed, in order, then live ones", async () => {
  await using ts = await startServer(HISTORY);
  const a = await connectAs(ts, "alice");
  const joined = await joinRoom(a, "chat");
  await a.request({ type: "message", room: "chat", payload: "before", id: "b" });
  const seen = await a.nextOf("message");
  await a.close();
  for (let i = 0; i < 20; i++) await ts.server.publish("chat", { i });

  const back = await connectAs(ts, "alice");
  const got = collectRoom(back, "chat");
  const rejoined = await joinRoom(back, "chat", { offset: seen.offset, epoch: joined.epoch });
  assert.equal(rejoined.recovered, true);
  assert.equal(rejoined.missed, 20);
  assert.equal(rejoined.offset, 21);
  await until(() => got.length === 20, "the replay");
  assert.deepEqual(got.map((m) => m.offset), Array.from({ length: 20 }, (_, i) => i + 2));
  assert.deepEqual(got.map((m) => (m.payload as { i: number }).i), [...Array(20).keys()]);
  await ts.server.publish("chat", "live");
  await until(() => got.length === 21, "the live message");
  assert.deepEqual([got[20]?.payload, got[20]?.offset], ["live", 22]);
  await sleep(50);
  assert.equal(got.length, 21, "nothing twice");
  await back.close();
});

Deno.test("recovery while others publish: nothing skipped, nothing twice", async () => {
  await using ts = await startServer({
    ...HISTORY,
    HISTORY_SIZE: "5000",
    RATE_LIMIT_CAPACITY: "100000",
  });
  const a = await connectAs(ts, "alice");
  const joined = await joinRoom(a, "busy");
  await a.close();
  for (let i = 0; i < 300; i++) await ts.server.publish("busy", i);

  const publisher = await connectAs(ts, "pub", {});
  await joinRoom(publisher, "busy");
  let stop = false;
  let sent = 0;
  const pump = (async () => {
    while (!stop && sent < 2000) {
      publisher.send({ type: "message", room: "busy", payload: `live-${sent++}` });
      if (sent % 10 === 0) await sleep(0);
    }
  })();
  const back = await connectAs(ts, "alice");
  const got = collectRoom(back, "busy");
  const rejoined = await joinRoom(back, "busy", { offset: 0, epoch: joined.epoch });
  assert.equal(rejoined.recovered, true);
  await sleep(100);
  stop = true;
  await pump;
  const last = 300 + sent;
  await until(() => got.at(-1)?.offset === last, `offset ${last}`, 10_000);
  assert.deepEqual(got.map((m) => m.offset), Array.from({ length: last }, (_, i) => i + 1));
  await publisher.close();
  await back.close();
});

Deno.test("recovery refused: unknown epoch, or messages already trimmed", async () => {
  await using ts = await startServer({ ...HISTORY, HISTORY_SIZE: "5" });
  const a = await connectAs(ts, "alice");
  const joined = await joinRoom(a, "small");
  for (let i = 0; i < 10; i++) await ts.server.publish("small", i);
  const b = await connectAs(ts, "bob");
  const got = collectRoom(b, "small");
  const wrongEpoch = await joinRoom(b, "small", { offset: 9, epoch: "not-the-epoch" });
  assert.deepEqual([wrongEpoch.recovered, wrongEpoch.offset], [false, 10]);
  assert.equal(wrongEpoch.missed, undefined);
  await b.request({ type: "leave", room: "small", id: "l" });
  const trimmed = await joinRoom(b, "small", { offset: 2, epoch: joined.epoch });
  assert.deepEqual([trimmed.recovered, trimmed.offset], [false, 10]);
  await b.request({ type: "leave", room: "small", id: "l2" });
  const ahead = await joinRoom(b, "small", { offset: 50, epoch: joined.epoch });
  assert.equal(ahead.recovered, false, "a position beyond the stream is not trusted");
  await sleep(50);
  assert.equal(got.length, 0, "nothing replayed");
  const kept = await joinRoom(await connectAs(ts, "carol"), "small", {
    offset: 5,
    epoch: joined.epoch,
  });
  assert.deepEqual([kept.recovered, kept.missed], [true, 5], "6..10 are still kept");
  await a.close();
  await b.close();
});

Deno.test("idempotent publish: the same id three times is delivered once and acked three times", async () => {
  await using ts = await startServer(HISTORY);
  const a = await connectAs(ts, "alice");
  const b = await connectAs(ts, "bob");
  await joinRoom(a, "chat");
  await joinRoom(b, "chat");
  const got = collectRoom(b, "chat");
  const acks = [];
  for (let i = 0; i < 3; i++) {
    acks.push(await a.request({ type: "message", room: "chat", payload: "once", id: "same" }));
  }
  assert.deepEqual(acks.map((ack) => [ack.type, ack.offset]), [["ack", 1], ["ack", 1], [
    "ack",
    1,
  ]]);
  // The same id from another user is another message.
  const other = await b.request({ type: "message", room: "chat", payload: "b", id: "same" });
  assert.equal(other.offset, 2);
  await until(() => got.length === 2, "two deliveries");
  await sleep(50);
  assert.deepEqual(got.map((m) => m.payload), ["once", "b"]);
  await a.close();
  await b.close();
});

Deno.test("POST /api/publish: offsets, idempotencyKey, and a plain room answers as before", async () => {
  await using ts = await startServer(HISTORY);
  const first = await publishApi(ts, { room: "feed", payload: 1, idempotencyKey: "k1" });
  assert.equal(first.status, 202);
  const body = await first.json();
  assert.deepEqual([body.recipients, body.offset, typeof body.epoch], [0, 1, "string"]);
  const again = await publishApi(ts, { room: "feed", payload: 1, idempotencyKey: "k1" });
  assert.equal(again.status, 200);
  assert.deepEqual(await again.json(), {
    recipients: 0,
    offset: 1,
    epoch: body.epoch,
    duplicate: true,
  });
  const other = await publishApi(ts, { room: "feed", payload: 2, idempotencyKey: "k2" });
  assert.equal((await other.json()).offset, 2);
  const bad = await publishApi(ts, { room: "feed", payload: 2, idempotencyKey: "" });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error.message, /idempotencyKey/);
  const long = await publishApi(ts, {
    room: "feed",
    payload: 2,
    idempotencyKey: "x".repeat(129),
  });
  assert.equal(long.status, 400);
  await long.body?.cancel();
});

Deno.test("history: newest first pages, oldest first within a page, `more`, `before`", async () => {
  await using ts = await startServer({ ...HISTORY, HISTORY_SIZE: "50" });
  for (let i = 1; i <= 60; i++) await ts.server.publish("log", { i });
  const c = await connectAs(ts, "reader");
  const page = await c.request({ type: "history", room: "log", limit: 20, id: "h1" });
  assert.equal(page.type, "history");
  const messages = page.messages as Msg[];
  assert.deepEqual(messages.map((m) => m.offset), Array.from({ length: 20 }, (_, i) => 41 + i));
  assert.deepEqual([page.offset, page.more], [60, true]);
  assert.equal(messages[0]?.type, "message");
  assert.equal(messages[0]?.epoch, page.epoch);
  const older = await c.request({
    type: "history",
    room: "log",
    limit: 100,
    before: 41,
    id: "h2",
  });
  const olderOffsets = (older.messages as Msg[]).map((m) => m.offset);
  assert.deepEqual(olderOffsets, Array.from({ length: 30 }, (_, i) => 11 + i), "1..10 trimmed");
  assert.equal(older.more, false);
  const all = await c.request({ type: "history", room: "log", id: "h3" });
  assert.equal((all.messages as Msg[]).length, 50, "default limit 100, 50 kept");
  assert.equal(all.more, false);
  for (const bad of [{ limit: 0 }, { limit: 1001 }, { before: 0 }, { limit: 1.5 }]) {
    const reply = await c.request({ type: "history", room: "log", id: "bad", ...bad });
    assert.equal(reply.code, "bad_request", JSON.stringify(bad));
  }
  await c.close();
});

Deno.test("history: a page stays within HISTORY_PAGE_BYTES and says more", async () => {
  await using ts = await startServer({
    ...HISTORY,
    HISTORY_PAGE_BYTES: "70000",
    MAX_MESSAGE_BYTES: "30000",
  });
  for (let i = 1; i <= 5; i++) await ts.server.publish("big", "x".repeat(20_000));
  const c = await connectAs(ts, "reader");
  const page = await c.request({ type: "history", room: "big", id: "h" });
  const offsets = (page.messages as Msg[]).map((m) => m.offset);
  assert.deepEqual(offsets, [3, 4, 5], "the newest that fit");
  assert.equal(page.more, true);
  const messagesJson = JSON.stringify(page.messages);
  assert.ok(new TextEncoder().encode(messagesJson).length <= 70_000);
  await c.close();
});

Deno.test("history: a message larger than HISTORY_PAGE_BYTES comes alone, so paging goes on", async () => {
  await using ts = await startServer({
    ...HISTORY,
    HISTORY_PAGE_BYTES: "1024",
    MAX_MESSAGE_BYTES: "8192",
  });
  for (const size of [100, 3000, 100]) await ts.server.publish("wide", "x".repeat(size));
  const c = await connectAs(ts, "reader");
  const newest = await c.request({ type: "history", room: "wide", id: "a" });
  assert.deepEqual((newest.messages as Msg[]).map((m) => m.offset), [3]);
  const big = await c.request({ type: "history", room: "wide", before: 3, id: "b" });
  assert.deepEqual([(big.messages as Msg[]).map((m) => m.offset), big.more], [[2], true]);
  const oldest = await c.request({ type: "history", room: "wide", before: 2, id: "c" });
  assert.deepEqual([(oldest.messages as Msg[]).map((m) => m.offset), oldest.more], [[1], false]);
  await c.close();
});

Deno.test("history: forbidden without read access, allowed read-only without joining", async () => {
  await using ts = await startServer(HISTORY);
  await ts.server.publish("team:a", "secret");
  const outsider = await connectAs(ts, "eve", { rooms: ["lobby"] });
  const denied = await outsider.request({ type: "history", room: "team:a", id: "h" });
  assert.deepEqual([denied.type, denied.code], ["error", "forbidden"]);
  const reader = await connectAs(ts, "rita", { rooms: [], roomsReadonly: ["team:*"] });
  const page = await reader.request({ type: "history", room: "team:a", id: "h" });
  assert.deepEqual((page.messages as Msg[]).map((m) => m.payload), ["secret"]);
  await outsider.close();
  await reader.close();
});

Deno.test("ROOM_POLICY history rules: the first matching rule that sets history decides", async () => {
  await using policy = await writePolicy([
    { room: "chat:*", users: "*" },
    { room: "chat:ephemeral:*", history: false },
    { room: "chat:*", history: { size: 3, ttlSec: 60 } },
    { room: "chat:other", history: { size: 50, ttlSec: 60 } },
  ]);
  await using ts = await startServer({ ROOM_POLICY: policy.path, HISTORY_SIZE: "0" });
  const c = await connectAs(ts, "alice", { rooms: [] });
  const kept = await joinRoom(c, "chat:general");
  assert.equal(kept.offset, 0);
  const none = await joinRoom(c, "chat:ephemeral:x");
  assert.equal(none.offset, undefined);
  for (let i = 0; i < 5; i++) await ts.server.publish("chat:other", i);
  const page = await c.request({ type: "history", room: "chat:other", id: "h" });
  assert.equal((page.messages as Msg[]).length, 3, "size 3 from the first rule that set it");
  await c.close();
});

Deno.test("ROOM_POLICY history values are validated at start-up", async () => {
  const { RoomPolicy } = await import("../lib/core/room_policy.ts");
  for (
    const history of [
      { size: 0, ttlSec: 60 },
      { size: 10_001, ttlSec: 60 },
      { size: 10, ttlSec: 0 },
      { size: 10, ttlSec: 7 * 86_400 + 1 },
      { size: 10 },
      true,
    ]
  ) {
    const text = JSON.stringify({ rooms: [{ room: "a", history }] });
    assert.throws(
      () => RoomPolicy.parse(text),
      /rule 1 \(room "[^"]*"\): history: must be false or \{"size"/,
      JSON.stringify(history),
    );
  }
  assert.ok(RoomPolicy.parse(JSON.stringify({ rooms: [{ room: "a", history: false }] })));
});

Deno.test("dev mode keeps history of 100 per room unless HISTORY_SIZE is set", async () => {
  const { loadConfig } = await import("../lib/config.ts");
  assert.equal(loadConfig({}).history.size, 100);
  assert.equal(loadConfig({ HISTORY_SIZE: "0" }).history.size, 0);
  assert.equal(loadConfig({ JWT_SECRET: "s".repeat(32) }).history.size, 0);
});

Deno.test("join since: malformed positions are bad_request, nothing joined", async () => {
  await using ts = await startServer(HISTORY);
  const c = await connectAs(ts, "alice");
  for (
    const since of [
      { offset: -1, epoch: "e" },
      { offset: 1 },
      { offset: 1, epoch: "" },
      { offset: 1, epoch: "e".repeat(65) },
      { offset: 1, epoch: "e", extra: true },
      "1",
    ]
  ) {
    const reply = await c.request({ type: "join", room: "chat", since, id: "j" });
    assert.deepEqual([reply.type, reply.code], ["error", "bad_request"], JSON.stringify(since));
  }
  assert.equal(ts.server.stats().rooms, 0);
  await c.close();
});

Deno.test("history rooms leave nothing behind after 300 join/publish/leave cycles", async () => {
  await using ts = await startServer({
    ...HISTORY,
    RATE_LIMIT_CAPACITY: "100000",
    HANDSHAKES_PER_MINUTE_PER_IP: "100000",
  });
  for (let i = 0; i < 300; i++) {
    const c = await connectAs(ts, `u${i % 7}`);
    await joinRoom(c, `r${i % 13}`);
    await c.request({ type: "message", room: `r${i % 13}`, payload: i, id: `m${i}` });
    await c.close();
  }
  await until(() => ts.server.stats().connections === 0, "all closed");
  assert.equal(ts.server.stats().rooms, 0);
  assert.equal(ts.server.health().history.rooms, 0);
});

/** Debian's python3-websockets (a client we did not write), run by the system Python. */
const PYTHON_RECOVER = `
import asyncio, json, sys
import websockets

async def main(url, room, offset, epoch, expect):
    async with websockets.connect(url) as ws:
        print(await ws.recv(), flush=True)  # welcome
        await ws.send(json.dumps({"type": "join", "room": room, "id": "j",
                                  "since": {"offset": offset, "epoch": epoch}}))
        got = 0
        while got < expect + 1:
            frame = await asyncio.wait_for(ws.recv(), 5)
            print(frame, flush=True)
            got += 1

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])))
`;

Deno.test("recovery from python3-websockets: joined recovered, then exactly the missed frames", async () => {
  const python = "/usr/bin/python3";
  const has = await new Deno.Command(python, {
    args: ["-c", "import websockets"],
    stdout: "null",
    stderr: "null",
  }).output().then((o) => o.success, () => false);
  if (!has) {
    if (Deno.env.get("CI")) throw new Error("CI is set but python3-websockets is missing");
    console.warn("python3-websockets missing: apt-get install python3-websockets");
    return;
  }
  await using ts = await startServer(HISTORY);
  const first = await ts.server.publish("py", "one");
  await ts.server.publish("py", "two");
  await ts.server.publish("py", "three");
  const url = `${ts.wsUrl}?token=${await token("python")}`;
  const out = await new Deno.Command(python, {
    args: ["-c", PYTHON_RECOVER, url, "py", "1", first.position!.epoch, "2"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, stderr);
  const frames = new TextDecoder().decode(out.stdout).trim().split("\n").map((l) =>
    JSON.parse(l) as Msg
  );
  assert.deepEqual(frames.map((f) => f.type), ["welcome", "joined", "message", "message"]);
  assert.deepEqual([frames[1]!.recovered, frames[1]!.missed], [true, 2]);
  assert.deepEqual(frames.slice(2).map((f) => [f.payload, f.offset]), [["two", 2], ["three", 3]]);
});

/** Resident memory of a process, in bytes, from /proc. */
async function rssOf(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
  return kb * 1024;
}

Deno.test("memory store: HISTORY_MAX_BYTES evicts oldest first and RSS stays bounded", async () => {
  const { freePort, spawnServer } = await import("./_process.ts");
  const port = freePort();
  await using node = await spawnServer(["run", "-A", "main.ts"], {
    port,
    env: {
      JWT_SECRET: SECRET,
      HOSTNAME: "127.0.0.1",
      PORT: String(port),
      LOG_LEVEL: "error",
      BUS: "memory",
      API_KEY,
      HISTORY_SIZE: "10000",
      HISTORY_MAX_BYTES: String(4 * 1024 * 1024),
    },
  });
  const publish = (room: string, payload: string) =>
    fetch(`${node.httpUrl}/api/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ room, payload }),
    }).then((r) => r.body?.cancel());
  const chunk = "x".repeat(16 * 1024);
  await publish("warmup", chunk);
  // 16 KiB messages into a store allowed 4 MiB, 32 rooms in turn.
  const fill = async (mib: number) => {
    for (let i = 0; i < mib * 64; i += 16) {
      await Promise.all(Array.from({ length: 16 }, (_, k) => publish(`r${(i + k) % 32}`, chunk)));
    }
  };
  // The first 64 MiB let the heap reach its working size (request garbage,
  // JIT); past that, a store that keeps only 4 MiB holds memory flat while
  // 128 MiB more go through it.
  await fill(64);
  const before = await rssOf(node.pid);
  await fill(128);
  const after = await rssOf(node.pid);
  const grown = after - before;
  assert.ok(grown < 48 * 1024 * 1024, `RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
  const reader = (await connect(`${node.wsUrl}?token=${await token("reader")}`)).client;
  const page = await reader.request({ type: "history", room: "r31", limit: 1000, id: "h" });
  const offsets = (page.messages as Msg[]).map((m) => m.offset as number);
  assert.ok(offsets.length > 0 && offsets.length < 384, `r31 keeps ${offsets.length}`);
  assert.equal(offsets.at(-1), 384, "the newest message of the room is kept");
  assert.equal(page.more, false, "older ones were evicted, not merely paged");
  const warm = await reader.request({ type: "history", room: "warmup", id: "w" });
  assert.deepEqual(warm.messages, [], "the oldest room's message went first");
  await reader.close();
});

Deno.test("joining a history room twice answers its position again", async () => {
  await using ts = await startServer(HISTORY);
  const c = await connectAs(ts, "alice");
  const first = await joinRoom(c, "twice");
  await ts.server.publish("twice", 1);
  await c.nextOf("message");
  const again = await joinRoom(c, "twice");
  assert.deepEqual([again.offset, again.epoch], [1, first.epoch]);
  await c.close();
});
