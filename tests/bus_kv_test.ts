/**
 * `BUS=kv` between two bus instances on one database: envelopes published
 * after `subscribe` arrive once, in order, never back at their origin; rooms
 * beyond the ten keys of one watch; unsubscribe stops delivery; gaps counted
 * when a reader falls behind the log.
 *
 * @module
 */
import assert from "node:assert/strict";
import { KvBus } from "../lib/bus/kv.ts";
import type { Envelope } from "../lib/bus/types.ts";

function waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

async function pair(): Promise<{ a: KvBus; b: KvBus; got: Envelope[]; close(): Promise<void> }> {
  const kv = await Deno.openKv(":memory:");
  const a = new KvBus({ kv, instanceId: "a" });
  const b = new KvBus({ kv, instanceId: "b" });
  const got: Envelope[] = [];
  a.onEnvelope((envelope) => got.push(envelope));
  b.onEnvelope(() => assert.fail("an instance never receives its own envelopes"));
  return {
    a,
    b,
    got,
    async close() {
      await a.close();
      await b.close();
      kv.close();
    },
  };
}

Deno.test("kv bus: envelopes arrive once, in order, with kind and position", async () => {
  const { a, b, got, close } = await pair();
  try {
    await a.subscribe("lobby");
    await b.subscribe("lobby");
    for (let n = 1; n <= 50; n++) b.publish("lobby", `{"n":${n}}`);
    b.publish("lobby", "{}", { kind: "presence" });
    b.publish("lobby", "{}", { position: { offset: 7, epoch: "e" } });
    await waitFor(() => got.length === 52, "52 envelopes");
    assert.deepEqual(
      got.slice(0, 50).map((e) => JSON.parse(e.frame).n),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    assert.ok(got.every((e) => e.origin === "b" && e.room === "lobby"));
    assert.equal(got[50]!.kind, "presence");
    assert.deepEqual(got[51]!.position, { offset: 7, epoch: "e" });
    assert.equal(a.health().transport, "kv");
    assert.equal(a.health().gaps, 0);
  } finally {
    await close();
  }
});

Deno.test("kv bus: only subscribed rooms, more than ten of them; unsubscribe stops delivery", async () => {
  const { a, b, got, close } = await pair();
  try {
    const rooms = Array.from({ length: 23 }, (_, i) => `r${i}`);
    await Promise.all(rooms.map((room) => a.subscribe(room)));
    assert.equal(a.watched, 23);
    for (const room of [...rooms, "other"]) b.publish(room, `{"room":"${room}"}`);
    await waitFor(() => got.length === 23, "one envelope per subscribed room");
    assert.deepEqual(new Set(got.map((e) => e.room)), new Set(rooms));
    await a.unsubscribe("r0");
    got.length = 0;
    b.publish("r0", "{}");
    b.publish("r1", "{}");
    await waitFor(() => got.length === 1, "r1 only");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(got.map((e) => e.room), ["r1"]);
    assert.equal(a.watched, 22);
  } finally {
    await close();
  }
});

Deno.test("kv bus: frames larger than a KV value travel", async () => {
  const { a, b, got, close } = await pair();
  try {
    await a.subscribe("big");
    const frame = JSON.stringify({ s: "🙂".repeat(100_000) });
    assert.ok(b.fits("big", frame));
    b.publish("big", frame);
    await waitFor(() => got.length === 1, "the big envelope");
    assert.equal(got[0]!.frame, frame);
  } finally {
    await close();
  }
});
