/**
 * The envelope wire format: system kinds and stream positions survive the
 * trip, and nothing else a peer writes into a header travels on.
 */
import assert from "node:assert/strict";
import { decodeEnvelope, encodeEnvelope, fitsEnvelope } from "../lib/bus/_codec.ts";
import { MemoryBus, MemoryHub } from "../lib/bus/memory.ts";
import type { Envelope } from "../lib/bus/types.ts";
import { PerIsolateBroker } from "../lib/broker/per_isolate.ts";
import { RoomManager } from "../lib/core/rooms.ts";

const MAX = 1024 * 1024;

Deno.test("codec: kind and position round-trip", () => {
  const envelope: Envelope = {
    origin: "a",
    seq: 3,
    room: "lobby",
    frame: '{"type":"message"}',
    kind: "presence",
    position: { offset: 41, epoch: "k3x9" },
  };
  assert.deepEqual(decodeEnvelope(encodeEnvelope(envelope), MAX), envelope);
  const plain: Envelope = { origin: "a", seq: 1, epoch: 2, room: "r", frame: "{}" };
  assert.deepEqual(decodeEnvelope(encodeEnvelope(plain), MAX), plain);
});

Deno.test("codec: refuses malformed positions and drops unknown header fields", () => {
  const bad = [
    '{"origin":"a","seq":1,"room":"r","offset":-1,"stream":"e"}\n{}',
    '{"origin":"a","seq":1,"room":"r","offset":1}\n{}',
    '{"origin":"a","seq":1,"room":"r","offset":1,"stream":""}\n{}',
    '{"origin":"a","seq":1,"room":"r","stream":"e"}\n{}',
    '{"origin":"a","seq":1,"room":"r","kind":7}\n{}',
  ];
  for (const wire of bad) assert.equal(decodeEnvelope(wire, MAX), undefined, wire);
  const extra = decodeEnvelope('{"origin":"a","seq":1,"room":"r","admin":true}\n{}', MAX);
  assert.deepEqual(extra, { origin: "a", seq: 1, room: "r", frame: "{}" });
});

Deno.test("codec: fitsEnvelope leaves room for the widest kind and position", () => {
  const frame = "x".repeat(900);
  const envelope: Envelope = {
    origin: "o",
    seq: Number.MAX_SAFE_INTEGER,
    epoch: Number.MAX_SAFE_INTEGER,
    room: "r",
    frame,
    kind: "k".repeat(32),
    position: { offset: Number.MAX_SAFE_INTEGER, epoch: "s".repeat(64) },
  };
  const size = new TextEncoder().encode(encodeEnvelope(envelope)).length;
  assert.equal(fitsEnvelope("o", "r", frame, size), true);
  assert.equal(fitsEnvelope("o", "r", frame, size - 1), false);
});

Deno.test("rooms: system envelopes go to their handler, never to members", async () => {
  const hub = new MemoryHub();
  const a = new MemoryBus({ hub });
  const b = new MemoryBus({ hub });
  const rooms = new RoomManager({ broker: new PerIsolateBroker({ bus: b }) });
  const seen: Envelope[] = [];
  rooms.onSystem("presence", (envelope) => seen.push(envelope));
  const frames: string[] = [];
  await rooms.join("lobby", { send: (frame) => frames.push(frame) });
  a.publish("lobby", '{"join":"alice"}', { kind: "presence" });
  a.publish("lobby", '{"x":1}', { kind: "unknown" });
  a.publish("lobby", '{"type":"message"}');
  assert.equal(seen.length, 1);
  assert.equal(seen[0]?.frame, '{"join":"alice"}');
  assert.deepEqual(frames, ['{"type":"message"}']);
  await a.close();
  await b.close();
});
