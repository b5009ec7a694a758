/**
 * What only the KV bus does, between two instances on one database: rooms
 * beyond the ten keys of one `kv.watch`, unwatching on unsubscribe, and
 * frames split over several KV values. What every transport promises
 * (delivery once and in order, never to the origin, kind and position) is
 * in the bus contract (tests/_bus_contract.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import { eventually } from "./_helpers.ts";
import { KvBus } from "../lib/bus/kv.ts";
import type { Envelope } from "../lib/bus/types.ts";

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

Deno.test("kv bus: only subscribed rooms, more than ten of them; unsubscribe stops delivery", async () => {
  const { a, b, got, close } = await pair();
  try {
    const rooms = Array.from({ length: 23 }, (_, i) => `r${i}`);
    await Promise.all(rooms.map((room) => a.subscribe(room)));
    assert.equal(a.watched, 23);
    for (const room of [...rooms, "other"]) b.publish(room, `{"room":"${room}"}`);
    await eventually(() => got.length === 23, 5000, "one envelope per subscribed room");
    assert.deepEqual(new Set(got.map((e) => e.room)), new Set(rooms));
    await a.unsubscribe("r0");
    got.length = 0;
    b.publish("r0", "{}");
    b.publish("r1", "{}");
    await eventually(() => got.length === 1, 5000, "r1 only");
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
    await eventually(() => got.length === 1, 5000, "the big envelope");
    assert.equal(got[0]!.frame, frame);
  } finally {
    await close();
  }
});
