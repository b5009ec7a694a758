/**
 * What only the BroadcastChannel bus does: garbage on the channel, gap
 * detection, its counters and Deno's channel quirks. What every transport
 * promises is in the bus contract (tests/_bus_contract.ts).
 *
 * @module
 */
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

Deno.test("broadcast bus: counts oversize envelopes, survives a throwing handler", async () => {
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

Deno.test("broadcast bus: refuses a non-positive envelope bound", () => {
  assert.throws(() => new BroadcastChannelBus({ maxEnvelopeBytes: 0 }), RangeError);
});

Deno.test("broadcast bus: a bus opened right after the last one closed still reaches others", async () => {
  // Closing the isolate's last channel tears down Deno's one receiver a
  // moment later; `close` resolves after that, so the next bus starts clean.
  const first = pair();
  await first.close();
  const t = pair();
  try {
    await t.b.subscribe("r");
    // Later than the moment Deno drops a receiver that is going away.
    await new Promise((resolve) => setTimeout(resolve, 10));
    t.a.publish("r", "hello");
    await eventually(() => t.atB.length === 1, 5000, "hello");
    assert.deepEqual(t.a.health(), { status: "ok", transport: "broadcast", gaps: 0, dropped: 0 });
  } finally {
    await t.close();
  }
});

Deno.test("broadcast bus: publish never throws, even when Deno's channel does", async () => {
  const errors: unknown[] = [];
  // A raw channel closed without waiting: the receiver Deno drops next is
  // the one this bus would send through, and postMessage then throws.
  const raw = new BroadcastChannel(`test-${crypto.randomUUID()}`);
  raw.close();
  const bus = new BroadcastChannelBus({
    channel: `test-${crypto.randomUUID()}`,
    onError: (err) => errors.push(err),
  });
  try {
    await new Promise((resolve) => setTimeout(resolve, 10));
    bus.publish("r", "into the void");
    const health = bus.health();
    if (errors.length === 0) {
      // A Deno without the race: nothing to report.
      assert.deepEqual(health, { status: "ok", transport: "broadcast", gaps: 0, dropped: 0 });
    } else {
      assert.equal(health.status, "degraded");
      assert.equal(health.dropped, 1);
      assert.equal(typeof health.detail, "string");
    }
  } finally {
    await bus.close();
  }
});
