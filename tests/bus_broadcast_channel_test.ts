import assert from "node:assert/strict";
import {
  BroadcastChannelBus,
  type BroadcastChannelBusOptions,
} from "../lib/bus/broadcast_channel.ts";
import type { Envelope } from "../lib/bus/types.ts";
import { eventually } from "./_helpers.ts";

/** Two buses on a channel of their own, plus what each received. */
function pair(options: Partial<BroadcastChannelBusOptions> = {}) {
  const channel = `test-${crypto.randomUUID()}`;
  const a = new BroadcastChannelBus({ channel, ...options });
  const b = new BroadcastChannelBus({ channel, ...options });
  const fromA: Envelope[] = [], fromB: Envelope[] = [];
  a.onEnvelope((e) => fromB.push(e));
  b.onEnvelope((e) => fromA.push(e));
  // A raw channel, for what no bus would send.
  const raw = new BroadcastChannel(channel);
  return {
    a,
    b,
    raw,
    /** What b received (from a or the raw channel). */
    atB: fromA,
    /** What a received. */
    atA: fromB,
    async close() {
      raw.close();
      await a.close();
      await b.close();
    },
  };
}

Deno.test("broadcast bus: delivers to the other bus, in order, never to itself", async () => {
  const t = pair();
  try {
    await t.a.subscribe("r");
    await t.b.subscribe("r");
    for (let i = 0; i < 100; i++) t.a.publish("r", `m${i}`);
    await eventually(() => t.atB.length === 100, 5000, "100 envelopes");
    assert.deepEqual(t.atB.map((e) => e.frame), Array.from({ length: 100 }, (_, i) => `m${i}`));
    assert.ok(t.atB.every((e) => e.origin === t.a.instanceId && e.room === "r"));
    t.b.publish("r", "back");
    await eventually(() => t.atA.length === 1, 5000, "reply");
    assert.deepEqual(t.atA.map((e) => e.frame), ["back"], "a never receives its own envelopes");
    assert.deepEqual(t.b.health(), { status: "ok", transport: "broadcast", gaps: 0, dropped: 0 });
  } finally {
    await t.close();
  }
});

Deno.test("broadcast bus: delivers only subscribed rooms, without false gaps", async () => {
  const t = pair();
  try {
    await t.b.subscribe("mine");
    t.a.publish("other", "not for b");
    t.a.publish("mine", "one");
    await eventually(() => t.atB.length === 1, 5000, "one");
    await t.b.unsubscribe("mine");
    await t.b.subscribe("barrier");
    t.a.publish("mine", "after unsubscribe");
    // Delivery is asynchronous: wait until b has seen it before subscribing again.
    t.a.publish("barrier", "barrier");
    await eventually(() => t.atB.length === 2, 5000, "barrier");
    await t.b.subscribe("mine");
    t.a.publish("mine", "two");
    await eventually(() => t.atB.length === 3, 5000, "two");
    assert.deepEqual(t.atB.map((e) => e.frame), ["one", "barrier", "two"]);
    assert.equal(t.b.health().gaps, 0, "filtered envelopes still advance the sequence");
  } finally {
    await t.close();
  }
});

Deno.test("broadcast bus: ignores and counts garbage, detects gaps", async () => {
  const gaps: Array<[string, number]> = [];
  const t = pair({ onGap: (origin, missing) => gaps.push([origin, missing]) });
  try {
    await t.b.subscribe("r");
    const garbage: unknown[] = [
      "not json",
      42,
      null,
      { origin: "x", seq: 1, room: "r", frame: "an object, not the wire string" },
      new Uint8Array([1, 2, 3]),
      '{"origin":"x","seq":"1","room":"r"}\nseq is a string',
      `{"origin":"x","seq":1,"room":"r"}\n${"y".repeat(70 * 1024)}`,
    ];
    for (const message of garbage) t.raw.postMessage(message);
    t.raw.postMessage('{"origin":"peer","seq":1,"room":"r"}\none');
    t.raw.postMessage('{"origin":"peer","seq":4,"room":"r"}\nfour');
    t.raw.postMessage('{"origin":"peer","seq":4,"room":"r"}\nfour again');
    await eventually(() => t.atB.some((e) => e.frame === "four"), 5000, "four");
    t.a.publish("r", "still working");
    await eventually(() => t.atB.some((e) => e.frame === "still working"), 5000, "bus alive");
    assert.equal(t.b.stats.invalid, garbage.length);
    assert.deepEqual(t.atB.map((e) => e.frame), ["one", "four", "still working"]);
    // Both buses see every envelope on the channel, so both notice the gap.
    assert.deepEqual(gaps, [["peer", 2], ["peer", 2]]);
    assert.equal(t.b.health().gaps, 2);
  } finally {
    await t.close();
  }
});

Deno.test("broadcast bus: refuses oversize envelopes, survives a throwing handler", async () => {
  const errors: unknown[] = [];
  const t = pair({ maxEnvelopeBytes: 1024, onError: (err) => errors.push(err) });
  try {
    await t.b.subscribe("r");
    t.a.publish("r", "x".repeat(1024));
    assert.equal(t.a.stats.oversize, 1);
    t.b.onEnvelope((e) => {
      if (e.frame === "boom") throw new Error("handler bug");
      t.atB.push(e);
    });
    t.a.publish("r", "boom");
    t.a.publish("r", "fine");
    await eventually(() => t.atB.length === 1, 5000, "fine");
    assert.equal(t.atB[0]?.frame, "fine");
    assert.equal(t.b.health().gaps, 0, "the refused envelope used no sequence number");
    assert.equal(errors.length, 1);
  } finally {
    await t.close();
  }
});

Deno.test("broadcast bus: close is idempotent and stops both directions", async () => {
  const t = pair();
  try {
    await t.b.subscribe("r");
    await t.a.close();
    await t.a.close();
    t.a.publish("r", "after close"); // must not throw on a closed channel
    t.raw.postMessage('{"origin":"peer","seq":1,"room":"r"}\nmarker');
    await eventually(() => t.atB.length === 1, 5000, "marker");
    assert.deepEqual(t.atB.map((e) => e.frame), ["marker"]);
    assert.equal(t.atA.length, 0, "a closed bus receives nothing");
    await t.b.close();
    await t.b.subscribe("r");
    assert.throws(() => new BroadcastChannelBus({ maxEnvelopeBytes: 0 }), RangeError);
  } finally {
    await t.close();
  }
});
