/**
 * What only the Redis bus does: acknowledged SUBSCRIBE, per-room sequences,
 * garbage and forged envelopes on a room channel, outages and restarts.
 * What every transport promises is in the bus contract
 * (tests/_bus_contract.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createRedisBus, RedisBus, type RedisBusOptions } from "../lib/bus/redis.ts";
import type { Envelope } from "../lib/bus/types.ts";
import { eventually, sleep } from "./_helpers.ts";
import { type RedisServer, redisTest } from "./_redis.ts";

interface Gap {
  origin: string;
  missing: number;
  room: string;
}

/** A bus under test plus everything it reported. */
interface Probe {
  bus: RedisBus;
  received: Envelope[];
  errors: Error[];
  gaps: Gap[];
  recoveries: number;
}

async function probe(redis: RedisServer, options: Partial<RedisBusOptions> = {}): Promise<Probe> {
  const p: Probe = {
    bus: undefined as unknown as RedisBus,
    received: [],
    errors: [],
    gaps: [],
    recoveries: 0,
  };
  p.bus = await createRedisBus({
    url: redis.url,
    prefix: "test",
    maxReconnectDelayMs: 200,
    onError: (err) => p.errors.push(err),
    onRecover: () => p.recoveries++,
    onGap: (origin, missing, room) => p.gaps.push({ origin, missing, room }),
    ...options,
  });
  p.bus.onEnvelope((envelope) => p.received.push(envelope));
  return p;
}

function frames(p: Probe, room: string): string[] {
  return p.received.filter((e) => e.room === room).map((e) => e.frame);
}

/** Publishes a marker in `room` and waits for it: everything `from` published before it has arrived. */
async function barrier(from: Probe, to: Probe, room: string): Promise<void> {
  const marker = `barrier-${crypto.randomUUID()}`;
  from.bus.publish(room, marker);
  await eventually(() => frames(to, room).includes(marker), 5000, `${marker} in ${room}`);
}

/** A raw envelope on the wire, as a peer (or an attacker) could publish it. */
function wire(fields: Record<string, unknown>, frame: string): string {
  return `${JSON.stringify(fields)}\n${frame}`;
}

redisTest("redis bus: sequences count per room, from 1", async (redis) => {
  const a = await probe(redis), b = await probe(redis);
  try {
    await b.bus.subscribe("r1");
    await b.bus.subscribe("r2");
    for (let i = 0; i < 5; i++) a.bus.publish(i % 2 === 0 ? "r1" : "r2", `m${i}`);
    await barrier(a, b, "r1");
    await barrier(a, b, "r2");
    const seqs = (room: string) => b.received.filter((e) => e.room === room).map((e) => e.seq);
    assert.deepEqual(seqs("r1"), [1, 2, 3, 4]);
    assert.deepEqual(seqs("r2"), [1, 2, 3]);
    const epochs = new Set(b.received.map((e) => `${e.room}:${e.epoch}`));
    assert.equal(epochs.size, 2, "one stream per room");
  } finally {
    await a.bus.close();
    await b.bus.close();
  }
});

redisTest("redis bus: subscribe resolves only once Redis acknowledged it", async (redis) => {
  const a = await probe(redis), b = await probe(redis);
  try {
    // Redis holds every command for 300 ms: an acknowledgement cannot come sooner.
    assert.equal(await redis.command("CLIENT", "PAUSE", "300", "ALL"), "+OK");
    const started = performance.now();
    await b.bus.subscribe("paused");
    assert.ok(performance.now() - started >= 250, "resolved before Redis could acknowledge");
    a.bus.publish("paused", "first");
    await eventually(() => frames(b, "paused").includes("first"), 5000, "first");
  } finally {
    await a.bus.close();
    await b.bus.close();
  }
});

redisTest(
  "redis bus: oversize envelopes are counted when sent and refused when received",
  async (redis) => {
    const a = await probe(redis, { maxEnvelopeBytes: 1024 });
    const b = await probe(redis, { maxEnvelopeBytes: 1024 });
    try {
      await b.bus.subscribe("r");
      a.bus.publish("r", "x".repeat(1024));
      a.bus.publish("r", "é".repeat(600));
      assert.equal(a.bus.stats.oversize, 2);
      a.bus.publish("r", "small");
      await eventually(() => frames(b, "r").includes("small"), 5000, "small");
      const big = wire({ origin: "peer", seq: 1, room: "r" }, "y".repeat(2000));
      assert.equal(await redis.command("PUBLISH", "test:room:r", big), ":1");
      await barrier(a, b, "r");
      assert.equal(b.bus.stats.invalid, 1);
      assert.equal(frames(b, "r").length, 2, "small and the barrier only");
    } finally {
      await a.bus.close();
      await b.bus.close();
    }
  },
);

redisTest("redis bus: counts gaps, drops duplicates, follows epoch restarts", async (redis) => {
  const b = await probe(redis);
  try {
    await b.bus.subscribe("r");
    const publish = (seq: number, epoch: number, frame: string) =>
      redis.command(
        "PUBLISH",
        "test:room:r",
        wire({ origin: "peer", seq, epoch, room: "r" }, frame),
      );
    await publish(1, 1, "one");
    await publish(2, 1, "two");
    await publish(5, 1, "five"); // 3 and 4 lost
    await publish(5, 1, "five again"); // duplicate
    await publish(4, 1, "four late"); // reordered
    await publish(1, 2, "restart"); // the peer forgot the room's counter: new epoch
    await publish(9, 1, "stale epoch");
    await publish(3, 2, "after restart"); // 2 lost
    await eventually(() => frames(b, "r").includes("after restart"), 5000, "last envelope");
    assert.deepEqual(frames(b, "r"), ["one", "two", "five", "restart", "after restart"]);
    assert.equal(b.bus.health().gaps, 3);
    assert.deepEqual(b.gaps, [
      { origin: "peer", missing: 2, room: "r" },
      { origin: "peer", missing: 1, room: "r" },
    ]);
  } finally {
    await b.bus.close();
  }
});

redisTest("redis bus: garbage on a room channel is ignored and counted", async (redis) => {
  const a = await probe(redis), b = await probe(redis);
  try {
    await b.bus.subscribe("r");
    const garbage = [
      "not json at all",
      "{}\nno fields",
      "[1,2]\narray header",
      wire({ origin: 1, seq: 1, room: "r" }, "origin not a string"),
      wire({ origin: "peer", seq: -1, room: "r" }, "negative seq"),
      wire({ origin: "peer", seq: 1.5, room: "r" }, "fractional seq"),
      wire({ origin: "peer", seq: 1, epoch: "x", room: "r" }, "bad epoch"),
      wire({ origin: "peer", seq: 1, room: "other" }, "room does not match the channel"),
      '{"origin":"peer","seq":1,"room":"r"', // no newline, truncated
    ];
    for (const message of garbage) await redis.command("PUBLISH", "test:room:r", message);
    await barrier(a, b, "r");
    assert.equal(b.bus.stats.invalid, garbage.length);
    assert.equal(frames(b, "r").length, 1, "only the barrier");
    // Extra header keys, `__proto__` included, do not travel on.
    const header = '{"__proto__":{"polluted":true},"extra":1,"origin":"peer","seq":1,"room":"r"}';
    await redis.command("PUBLISH", "test:room:r", `${header}\nproto`);
    await eventually(() => frames(b, "r").includes("proto"), 5000, "proto");
    const envelope = b.received.find((e) => e.frame === "proto");
    assert.deepEqual(Object.keys(envelope ?? {}).sort(), ["frame", "origin", "room", "seq"]);
    assert.equal(Object.getPrototypeOf(envelope), Object.prototype);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  } finally {
    await a.bus.close();
    await b.bus.close();
  }
});

redisTest("redis bus: survives a Redis restart without being recreated", async (redis) => {
  const a = await probe(redis), b = await probe(redis);
  try {
    await b.bus.subscribe("r");
    await barrier(a, b, "r");

    await redis.stop();
    await eventually(
      () => a.bus.health().status === "degraded" && b.bus.health().status === "degraded",
      10_000,
      "both buses degraded",
    );
    const health = a.bus.health();
    assert.equal(typeof health.detail, "string");
    for (let i = 0; i < 100; i++) a.bus.publish("r", `lost-${i}`); // must not throw
    assert.ok(a.bus.stats.dropped >= 100);
    // Several reconnect attempts fail meanwhile; the outage is still reported once.
    await sleep(600);
    assert.equal(a.errors.length, 1);
    assert.equal(b.errors.length, 1);
    assert.match(a.errors[0]?.message ?? "", /lost the connection to redis:\/\/127\.0\.0\.1:\d+/);

    await redis.restart();
    // b resubscribes by itself: poll until a publish gets through.
    const deadline = Date.now() + 10_000;
    let n = 0;
    while (!frames(b, "r").some((f) => f.startsWith("back-"))) {
      assert.ok(Date.now() < deadline, "delivery did not resume within 10 s");
      a.bus.publish("r", `back-${n++}`);
      await sleep(50);
    }
    assert.equal(a.bus.health().status, "ok");
    assert.equal(b.bus.health().status, "ok");
    assert.equal(a.recoveries, 1);
    assert.equal(b.recoveries, 1);
    assert.ok(frames(b, "r").every((f) => !f.startsWith("lost-")));
  } finally {
    await a.bus.close();
    await b.bus.close();
  }
});

redisTest(
  "redis bus: starts degraded when Redis is down, connects when it comes up",
  async (redis) => {
    await redis.stop();
    const errors: Error[] = [];
    const started = Date.now();
    const bus = await createRedisBus({
      url: redis.url,
      prefix: "test",
      startTimeoutMs: 300,
      maxReconnectDelayMs: 100,
      onError: (err) => errors.push(err),
    });
    try {
      assert.ok(Date.now() - started < 3000);
      assert.equal(bus.health().status, "degraded");
      assert.equal(errors.length, 1);
      assert.match(errors[0]?.message ?? "", /cannot reach redis:\/\/127\.0\.0\.1:\d+/);
      await bus.subscribe("r"); // resolves while degraded
      bus.publish("r", "dropped");
      assert.equal(bus.stats.dropped, 1);
      await redis.restart();
      assert.equal(await bus.ready(10_000), true);
      assert.equal(bus.health().status, "ok");
      // The room subscribed while down was subscribed on connect.
      assert.equal(
        await redis.command(
          "PUBLISH",
          "test:room:r",
          wire({ origin: "p", seq: 1, room: "r" }, "hi"),
        ),
        ":1",
      );
    } finally {
      await bus.close();
    }
  },
);

Deno.test("redis bus: rejects a bad URL without echoing it", () => {
  assert.throws(() => new RedisBus({ url: "http://user:secret@host" }), (err: unknown) => {
    assert.ok(err instanceof TypeError);
    assert.doesNotMatch(err.message, /secret/);
    return true;
  });
});
