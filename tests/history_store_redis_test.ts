/**
 * What only the Redis history store does: its faults (Redis killed, frozen,
 * keys lost) and its publishing, across two instances. The shared behaviour
 * is in the contract suite (tests/history_store_contract_test.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createRedisBus } from "../lib/bus/redis.ts";
import type { Envelope } from "../lib/bus/types.ts";
import {
  createRedisHistoryStore,
  type CreateRedisHistoryStoreOptions,
  type RedisHistoryStore,
} from "../lib/store/history/redis.ts";
import { StoreUnavailableError } from "../lib/store/types.ts";
import { eventually } from "./_helpers.ts";
import { type RedisServer, redisTest } from "./_redis.ts";

const limits = { size: 1000, ttlMs: 60_000 };

interface Probe {
  store: RedisHistoryStore;
  errors: Error[];
  recoveries: number;
}

async function probe(
  redis: RedisServer,
  options: Partial<CreateRedisHistoryStoreOptions> = {},
): Promise<Probe> {
  const p: Probe = { store: undefined as unknown as RedisHistoryStore, errors: [], recoveries: 0 };
  p.store = await createRedisHistoryStore({
    url: redis.url,
    prefix: "test",
    maxReconnectDelayMs: 200,
    onError: (err) => p.errors.push(err),
    onRecover: () => p.recoveries++,
    ...options,
  });
  return p;
}

/** Appends until one succeeds (Redis is coming back). */
async function appendWhenBack(store: RedisHistoryStore, room: string, frame: string) {
  let result;
  await eventually(
    async () => {
      try {
        result = await store.append(room, frame, { limits });
        return true;
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) throw err;
        return false;
      }
    },
    10_000,
    "an append after Redis came back",
  );
  return result!;
}

redisTest(
  "redis history: Redis killed → unavailable and degraded; back → works without restart",
  async (redis) => {
    const p = await probe(redis);
    try {
      const before = await p.store.append("r", '{"n":1}', { limits });
      assert.deepEqual(p.store.health(), { status: "ok", transport: "redis" });
      await redis.stop();
      await assert.rejects(
        p.store.append("r", '{"n":2}', { limits }),
        (err: unknown) => err instanceof StoreUnavailableError && err.retryAfterMs > 0,
      );
      await eventually(() => p.store.health().status === "degraded", 5000, "degraded health");
      await assert.rejects(p.store.read("r", { limit: 10, limits }), StoreUnavailableError);
      await assert.rejects(p.store.position("r", limits), StoreUnavailableError);
      assert.equal(p.errors.length, 1, "the outage is reported once");
      assert.match(
        p.errors[0]!.message,
        new RegExp(`lost the connection to redis://127.0.0.1:${redis.port}`),
      );
      await redis.restart();
      const after = await appendWhenBack(p.store, "r", '{"n":3}');
      assert.equal(p.store.health().status, "ok");
      assert.equal(p.recoveries, 1);
      // This Redis keeps nothing across a restart: the past is lost, so a new epoch from 1.
      assert.notEqual(after.epoch, before.epoch);
      assert.equal(after.offset, 1);
    } finally {
      await p.store.close();
    }
  },
);

redisTest("redis history: a frozen Redis times out as unavailable and recovers", async (redis) => {
  const p = await probe(redis, { commandTimeoutMs: 300, connectTimeoutMs: 300 });
  try {
    await p.store.append("r", "{}", { limits });
    redis.pause();
    try {
      await assert.rejects(p.store.append("r", "{}", { limits }), StoreUnavailableError);
      assert.equal(p.store.health().status, "degraded");
    } finally {
      redis.resume();
    }
    const next = await appendWhenBack(p.store, "r", "{}");
    // The timed-out append may or may not have run: offsets stay contiguous either way.
    assert.ok(next.offset === 2 || next.offset === 3);
    const read = await p.store.read("r", { after: 0, limit: 10, limits });
    assert.deepEqual(
      read.entries.map((e) => e.offset),
      Array.from({ length: next.offset }, (_, i) => i + 1),
    );
  } finally {
    await p.store.close();
  }
});

redisTest(
  "redis history: starts before Redis and closes cleanly while it is down",
  async (redis) => {
    await redis.stop();
    const p = await probe(redis, { startTimeoutMs: 100 });
    try {
      assert.equal(p.store.health().status, "degraded");
      await assert.rejects(p.store.position("r", limits), StoreUnavailableError);
      await redis.restart();
      assert.equal(await p.store.ready(10_000), true);
      assert.equal((await p.store.position("r", limits)).offset, 0);
    } finally {
      await p.store.close();
    }
    // A store closed during an outage leaves no reconnect timer (checked by --trace-leaks).
    await redis.stop();
    const q = await probe(redis, { startTimeoutMs: 50 });
    await q.store.close();
    assert.equal(q.store.health().status, "degraded");
    await assert.rejects(q.store.append("r", "{}", { limits }), StoreUnavailableError);
  },
);

redisTest(
  "redis history: a lost meta key means a new epoch, never reused offsets",
  async (redis) => {
    const p = await probe(redis);
    try {
      const first = await p.store.append("r", '{"n":1}', { limits });
      await p.store.append("r", '{"n":2}', { limits });
      assert.equal(await redis.command("DEL", "test:history-meta:r"), ":1");
      const after = await p.store.append("r", '{"n":3}', { limits });
      assert.notEqual(after.epoch, first.epoch);
      assert.equal(after.offset, 1);
      const read = await p.store.read("r", { after: 0, limit: 10, limits });
      assert.deepEqual(
        read.entries,
        [{ offset: 1, frame: '{"n":3}' }],
        "the old stream went with it",
      );
      // Stream and meta both expire: nothing outlives the TTL.
      assert.match(await redis.command("PTTL", "test:history:r"), /^:\d+$/);
      assert.match(await redis.command("PTTL", "test:history-meta:r"), /^:\d+$/);
    } finally {
      await p.store.close();
    }
  },
);

redisTest(
  "redis history: two instances get one total order, published to the bus with positions",
  async (redis) => {
    // Two nodes whose appends also publish (as the Redis broker asks), and one that only stores.
    const a = await probe(redis);
    const b = await probe(redis);
    const quiet = await probe(redis);
    const publishAs = (node: Probe) => node === a ? "node-a" : "node-b";
    // Node A's own bus: positioned envelopes from its own store reach it too.
    const bus = await createRedisBus({ url: redis.url, prefix: "test", instanceId: "node-a" });
    const received: Envelope[] = [];
    bus.onEnvelope((e) => received.push(e));
    try {
      await bus.subscribe("room");
      const sent = await Promise.all(
        Array.from({ length: 100 }, (_, n) => {
          const node = n % 2 === 0 ? a : b;
          return node.store.append("room", JSON.stringify({ n }), {
            limits,
            publishAs: publishAs(node),
          });
        }),
      );
      assert.deepEqual(
        sent.map((r) => r.offset).sort((x, y) => x - y),
        Array.from({ length: 100 }, (_, i) => i + 1),
      );
      assert.equal(new Set(sent.map((r) => r.epoch)).size, 1);
      const epoch = sent[0]!.epoch;
      await eventually(() => received.length >= 100, 5000, "100 envelopes");
      assert.deepEqual(
        received.map((e) => e.position),
        Array.from({ length: 100 }, (_, i) => ({ offset: i + 1, epoch })),
        "published in offset order",
      );
      const stored = await a.store.read("room", { after: 0, limit: 1000, limits });
      assert.deepEqual(received.map((e) => e.frame), stored.entries.map((e) => e.frame));
      for (const [n, result] of sent.entries()) {
        const envelope = received[result.offset - 1]!;
        assert.equal(envelope.origin, n % 2 === 0 ? "node-a" : "node-b");
        assert.equal(envelope.room, "room");
        assert.equal(envelope.frame, JSON.stringify({ n }));
      }
      // A duplicate is neither stored nor published; an append without `publishAs` publishes nothing.
      const dedupe = { key: "k", windowMs: 60_000 };
      await a.store.append("room", '{"d":1}', { limits, dedupe, publishAs: "node-a" });
      const dup = await b.store.append("room", '{"d":1}', { limits, dedupe, publishAs: "node-b" });
      assert.equal(dup.duplicate, true);
      await quiet.store.append("room", '{"quiet":1}', { limits });
      const marker = await a.store.append("room", '{"marker":1}', { limits, publishAs: "node-a" });
      await eventually(() => received.at(-1)?.position?.offset === marker.offset, 5000, "marker");
      assert.deepEqual(received.slice(100).map((e) => e.position?.offset), [101, 103]);
    } finally {
      await bus.close();
      await a.store.close();
      await b.store.close();
      await quiet.store.close();
    }
  },
);
