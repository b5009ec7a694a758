/**
 * Write coalescing (`?batch=1`, the browser client's default): members sent
 * the same frames in one turn share one batched frame; a member whose frames
 * differ (another room, its own acks, joined mid-burst) gets exactly its own,
 * in order; clients that did not ask get one message per frame.
 */
import assert from "node:assert/strict";
import { type Flushable, PendingFrames, WriteBatcher } from "../lib/core/write_batcher.ts";
import { type Client, connect, join, type Msg, sleep, startServer, token } from "./_helpers.ts";

/** Every frame a client receives, raw, from now on. */
function rawFrames(client: Client): string[] {
  const frames: string[] = [];
  client.ws.addEventListener("message", (e) => frames.push(String(e.data)));
  return frames;
}

function lines(frames: readonly string[]): Msg[] {
  return frames.flatMap((f) => f.split("\n").map((l) => JSON.parse(l) as Msg));
}

async function open(url: string, rooms: string[]): Promise<Client> {
  const { client } = await connect(url);
  for (const room of rooms) await join(client, room);
  return client;
}

Deno.test("PendingFrames: the same frames in the same order are one node and one text", () => {
  const batcher = new WriteBatcher();
  const held: Flushable = { flush() {} };
  const a = batcher.begin(held).then("m1").then("m2");
  const b = batcher.begin(held).then("m1").then("m2");
  assert.equal(a, b, "members sent the same frames share the node");
  assert.equal(a.text, "m1\nm2");
  assert.equal(a.count, 2);
  assert.equal(a.length, "m1\nm2".length);
  // Parting paths: an ack in between, or a member that came in after m1.
  const withAck = batcher.begin(held).then("m1").then("ack").then("m2");
  const late = batcher.begin(held).then("m2");
  assert.notEqual(withAck, a);
  assert.equal(withAck.text, "m1\nack\nm2");
  assert.equal(late.text, "m2");
  // A text built on a node whose parent already has one reuses it.
  assert.equal(a.then("m3").text, "m1\nm2\nm3");
  batcher.close();
  // The next turn starts from an empty path.
  assert.notEqual(batcher.begin(held).then("m1"), a.parent);
  batcher.close();
  assert.equal(PendingFrames.root().count, 0);
});

Deno.test("?batch=1: one frame per turn for a room's members; a member of two rooms gets both, in order", async () => {
  await using ts = await startServer();
  const url = (sub: string, batch: boolean) =>
    token(sub).then((t) => `${ts.wsUrl}?token=${t}${batch ? "&batch=1" : ""}`);
  const both = await open(await url("x", true), ["r1", "r2"]);
  const one = await open(await url("y", true), ["r1"]);
  const plain = await open(await url("z", false), ["r1"]);
  const frames = { both: rawFrames(both), one: rawFrames(one), plain: rawFrames(plain) };
  void ts.server.publish("r1", { i: 0 });
  void ts.server.publish("r2", { j: 0 });
  void ts.server.publish("r1", { i: 1 });
  await sleep(100);
  assert.equal(frames.one.length, 1, "one frame for the room's two messages");
  assert.deepEqual(lines(frames.one).map((m) => m.payload), [{ i: 0 }, { i: 1 }]);
  assert.equal(frames.both.length, 1);
  assert.deepEqual(
    lines(frames.both).map((m) => [m.room, m.payload]),
    [["r1", { i: 0 }], ["r2", { j: 0 }], ["r1", { i: 1 }]],
    "the other room's message in between, where it was sent",
  );
  assert.equal(frames.plain.length, 2, "a client that did not ask gets one message per frame");
  for (const c of [both, one, plain]) await c.close();
});

Deno.test("?batch=1: the sender's acks stay in order between its room's messages", async () => {
  await using ts = await startServer();
  const t = await token("p");
  const sender = await open(`${ts.wsUrl}?token=${t}&batch=1`, ["r"]);
  const member = await open(`${ts.wsUrl}?token=${await token("m")}&batch=1`, ["r"]);
  const got = { sender: rawFrames(sender), member: rawFrames(member) };
  // Sent back to back: the server mostly reads them in one turn.
  for (let i = 0; i < 3; i++) {
    sender.send({ type: "message", room: "r", payload: i, id: `p${i}` });
  }
  await sleep(150);
  const seen = lines(got.sender).map((m) =>
    m.type === "ack" ? `ack ${m.id}` : `message ${m.payload}`
  );
  assert.deepEqual(seen, [
    "message 0",
    "ack p0",
    "message 1",
    "ack p1",
    "message 2",
    "ack p2",
  ]);
  assert.deepEqual(lines(got.member).map((m) => m.payload), [0, 1, 2]);
  for (const c of [sender, member]) await c.close();
});

Deno.test("?batch=1: a member that joins mid-burst gets every message after its join, once, in order", async () => {
  await using ts = await startServer();
  const early = await open(`${ts.wsUrl}?token=${await token("e")}&batch=1`, ["r"]);
  const earlyFrames = rawFrames(early);
  const { client: late } = await connect(`${ts.wsUrl}?token=${await token("l")}&batch=1`);
  const lateFrames = rawFrames(late);
  const total = 300;
  const burst = (async () => {
    for (let i = 0; i < total; i += 10) {
      // Ten messages per turn, turns a millisecond apart: the join lands among them.
      for (let k = i; k < i + 10; k++) void ts.server.publish("r", k);
      await sleep(1);
    }
  })();
  await sleep(20);
  await join(late, "r");
  await burst;
  await sleep(100);
  const earlyGot = lines(earlyFrames).map((m) => m.payload);
  assert.deepEqual(earlyGot, Array.from({ length: total }, (_, i) => i));
  assert.ok(earlyFrames.length < total, `${earlyFrames.length} frames for ${total} messages`);
  const lateGot = lines(lateFrames).filter((m) => m.type === "message").map((m) => m.payload);
  assert.ok(lateGot.length > 0 && lateGot.length < total, `${lateGot.length} after the join`);
  const first = lateGot[0] as number;
  assert.deepEqual(lateGot, Array.from({ length: total - first }, (_, i) => first + i));
  for (const c of [early, late]) await c.close();
});
