import assert from "node:assert/strict";
import { BroadcastChannelBus } from "../lib/bus/broadcast_channel.ts";
import { parseClientFrame } from "../lib/protocols/native/protocol.ts";
import { MessageTooLargeError } from "../lib/core/rooms.ts";
import { connect, connectAs, join, startServer, token } from "./_helpers.ts";

Deno.test("parseClientFrame: each kind of bad frame has a precise error", () => {
  const err = (text: string) => {
    const r = parseClientFrame(text);
    assert.ok(!r.ok, text);
    return r.error;
  };
  assert.equal(err("not json"), "frame is not valid JSON");
  assert.equal(err("[1,2]"), "frame must be a JSON object");
  assert.equal(err("null"), "frame must be a JSON object");
  assert.equal(err('{"type":"dance"}'), 'unknown type "dance"');
  assert.equal(err('{"type":5}'), "type must be a string");
  assert.match(err('{"type":"join","room":5}'), /^room: /);
  assert.match(err('{"type":"join","room":"bad room!"}'), /room must be 1-128 characters/);
  assert.match(err(`{"type":"join","room":"${"a".repeat(129)}"}`), /room must be/);
  assert.match(err('{"type":"join","room":"r","extra":1}'), /extra/);
  assert.match(err('{"type":"message","room":"r"}'), /payload/);
  assert.match(err(`{"type":"ping","id":"${"x".repeat(65)}"}`), /^id: /);
  assert.equal(
    err('{"type":"message","room":"r","payload":{"__proto__":{"x":1}}}'),
    "__proto__ keys are not allowed",
  );
  assert.equal(err('{"type":"ping","\\u005f_proto__":1}'), "__proto__ keys are not allowed");
  const withId = parseClientFrame('{"type":"join","room":"bad room","id":"abc"}');
  assert.ok(!withId.ok && withId.id === "abc", "the id is kept for the error reply");
  assert.ok(
    parseClientFrame('{"type":"message","room":"r","payload":null}').ok,
    "null is a payload",
  );
});

Deno.test("bad frames get bad_request and the connection keeps working", async () => {
  await using ts = await startServer();
  const a = await connectAs(ts, "a");
  const b = await connectAs(ts, "b");
  await join(b, "r");
  const bad = [
    "not json",
    "42",
    '{"type":"nope","id":"u"}',
    '{"type":"join","room":["r"]}',
    '{"type":"message","room":"r","payload":{"__proto__":{"admin":true}}}',
    '{"type":"join","room":"r","constructor":1}',
  ];
  for (const frame of bad) {
    a.send(frame);
    const reply = await a.nextOf("error");
    assert.equal(reply.code, "bad_request", frame);
    assert.equal(typeof reply.message, "string");
  }
  a.ws.send(new Uint8Array([1, 2, 3]));
  const binary = await a.nextOf("error");
  assert.equal(binary.code, "bad_request");
  assert.match(String(binary.message), /binary/);
  await join(a, "r");
  await a.request({ type: "message", room: "r", payload: "still here", id: "ok" });
  assert.equal((await b.nextOf("message")).payload, "still here", "other connections untouched");
  for (const c of [a, b]) await c.close();
});

Deno.test("a frame over MAX_MESSAGE_BYTES closes with 1009; others are untouched", async () => {
  await using ts = await startServer({ MAX_MESSAGE_BYTES: "1024" });
  const a = await connectAs(ts, "a");
  const b = await connectAs(ts, "b");
  await join(b, "r");
  a.send({ type: "message", room: "r", payload: "x".repeat(2000) });
  const closed = await a.closed;
  assert.equal(closed.code, 1009);
  // Multi-byte text is measured in bytes, not characters.
  const c = await connectAs(ts, "c");
  c.send({ type: "ping", pad: "é".repeat(600) });
  assert.equal((await c.closed).code, 1009);
  const d = await connectAs(ts, "d");
  d.ws.send(new Uint8Array(4096));
  assert.equal((await d.closed).code, 1009);
  assert.equal((await b.request({ type: "ping", id: "p" })).type, "pong");
  assert.equal(ts.audit.of("frame_too_big").length, 3);
  await b.close();
});

Deno.test("ping answers pong with the id", async () => {
  await using ts = await startServer();
  const a = await connectAs(ts, "a");
  assert.deepEqual(await a.request({ type: "ping", id: "p1" }), { type: "pong", id: "p1" });
  a.send({ type: "ping" });
  assert.deepEqual(await a.nextOf("pong"), { type: "pong" });
  await a.close();
});

Deno.test("a message too large for the bus is refused at publish with payload_too_large", async () => {
  const bus = new BroadcastChannelBus({
    channel: `t-${crypto.randomUUID()}`,
    maxEnvelopeBytes: 1024,
  });
  await using ts = await startServer({}, { bus });
  const a = await connectAs(ts, "a");
  await join(a, "r");
  const r = await a.request({ type: "message", room: "r", payload: "é".repeat(600), id: "big" });
  assert.deepEqual(r, {
    type: "error",
    code: "payload_too_large",
    message: "message too large for the bus",
    id: "big",
    room: "r",
  });
  // Near the limit, the envelope header decides: the frame alone would fit.
  const edge = await a.request({
    type: "message",
    room: "r",
    payload: "x".repeat(900),
    id: "edge",
  });
  assert.equal(edge.code, "payload_too_large");
  await assert.rejects(ts.server.publish("r", "x".repeat(2000)), MessageTooLargeError);
  await a.request({ type: "message", room: "r", payload: "small", id: "ok" });
  assert.equal(
    (await a.nextOf("message")).payload,
    "small",
    "nothing of the refused ones was delivered",
  );
  await a.close();
});

Deno.test("?batch=1 coalesces one turn's messages into one newline-separated frame", async () => {
  await using ts = await startServer();
  const t = await token("a");
  const frames = { batch: [] as string[], plain: [] as string[] };
  const open = async (url: string, into: string[]) => {
    const { client } = await connect(url);
    await join(client, "r");
    client.ws.addEventListener("message", (e) => into.push(String(e.data)));
    return client;
  };
  const batched = await open(`${ts.wsUrl}?token=${t}&batch=1`, frames.batch);
  const plain = await open(`${ts.wsUrl}?token=${t}`, frames.plain);
  for (let i = 0; i < 3; i++) void ts.server.publish("r", { i });
  for (const c of [batched, plain]) for (let i = 0; i < 3; i++) await c.nextOf("message");
  assert.equal(frames.batch.length, 1, "one frame for the three messages");
  assert.deepEqual(frames.batch[0]!.split("\n").map((l) => JSON.parse(l).payload), [{ i: 0 }, {
    i: 1,
  }, { i: 2 }]);
  assert.equal(frames.plain.length, 3, "plain clients are unaffected");
  assert.ok(frames.plain.every((f) => !f.includes("\n")));
  for (const c of [batched, plain]) await c.close();
});
