/**
 * Recoveries larger than `MAX_BUFFERED_BYTES`: a client that reads as fast as
 * it can gets the whole backlog (then the live messages, in order, once each)
 * on the memory and the Redis store; one that does not read is still closed
 * with 1008, so the server holds no more than the limit for it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createBus } from "../lib/bus/from_config.ts";
import { loadConfig } from "../lib/config.ts";
import { createHistoryStore, historyStoreSlice } from "../lib/store/history/from_config.ts";
import {
  type Client,
  collectRoom,
  connectAs,
  eventually,
  joinRoom,
  type Msg,
  rawWebSocket,
  SECRET,
  sendRawText,
  sleep,
  startServer,
  type TestServer,
  token,
} from "./_helpers.ts";
import { redisTest } from "./_redis.ts";

const ENV = {
  HISTORY_SIZE: "10000",
  // The default 4 MiB: the backlogs below are twice that.
  MAX_BUFFERED_BYTES: String(4 * 1024 * 1024),
  RATE_LIMIT_CAPACITY: "100000",
};

/** Publishes `count` messages of about `bytes` each; returns the stream's epoch. */
async function fill(ts: TestServer, room: string, count: number, bytes: number): Promise<string> {
  let epoch = "";
  for (let i = 1; i <= count; i++) {
    const { position } = await ts.server.publish(room, { i, pad: "x".repeat(bytes) });
    epoch = position?.epoch ?? epoch;
  }
  return epoch;
}

/**
 * Recovers `room` from offset 0 with a client that reads as fast as it can,
 * while `live` more messages are published during the replay; resolves with
 * what arrived, how the socket ended (if it did) and how long it took.
 */
async function recover(
  ts: TestServer,
  room: string,
  epoch: string,
  expected: number,
  live: number,
): Promise<{ got: Msg[]; closed: { code: number; reason: string } | null; ms: number }> {
  const reader: Client = await connectAs(ts, "reader");
  const got = collectRoom(reader, room);
  let closed: { code: number; reason: string } | null = null;
  void reader.closed.then((c) => closed = c);
  const started = performance.now();
  const joined = await joinRoom(reader, room, { offset: 0, epoch });
  assert.deepEqual([joined.recovered, joined.missed], [true, expected - live]);
  for (let i = 0; i < live; i++) await ts.server.publish(room, { live: i });
  await eventually(
    () => closed !== null || got.length >= expected,
    60_000,
    `${expected} messages`,
  );
  const ms = performance.now() - started;
  // Anything sent twice would arrive right behind the last one.
  await sleep(100);
  const ended = closed;
  await reader.close();
  return { got, closed: ended, ms };
}

function assertInOrder(got: Msg[], expected: number): void {
  assert.equal(got.length, expected, "every message once");
  assert.ok(
    got.every((m, i) => m.offset === i + 1),
    `offsets 1..${expected} in order`,
  );
}

Deno.test("replay pacing (memory): a fast reader recovers 4,000 × 2 KB (8 MB, twice MAX_BUFFERED_BYTES) with no 1008, live messages after", async () => {
  await using ts = await startServer(ENV);
  const epoch = await fill(ts, "big", 4000, 2000);
  const { got, closed, ms } = await recover(ts, "big", epoch, 4100, 100);
  console.log(
    `memory 4000 x 2 KB: ${got.length} messages in ${ms.toFixed(0)} ms, closed ${
      JSON.stringify(closed)
    }`,
  );
  assert.equal(closed, null, `closed with ${JSON.stringify(closed)}`);
  assertInOrder(got, 4100);
  assert.deepEqual(got.slice(4000).map((m) => (m.payload as { live: number }).live), [
    ...Array(100).keys(),
  ]);
  assert.equal(ts.audit.of("slow_consumer").length, 0);
});

Deno.test("replay pacing: a client that does not read during a big replay is still closed with 1008", async () => {
  await using ts = await startServer(ENV);
  const epoch = await fill(ts, "big", 4000, 2000);
  const conn = await rawWebSocket(ts.port, `/ws?token=${await token("sleepy")}`);
  await sendRawText(conn, `{"type":"join","room":"big","since":{"offset":0,"epoch":"${epoch}"}}`);
  // Live traffic keeps coming while the replay waits for the sleeper.
  const deadline = Date.now() + 20_000;
  let n = 0;
  while (Date.now() < deadline && ts.audit.of("slow_consumer").length === 0) {
    await ts.server.publish("big", { live: n++, pad: "y".repeat(2000) });
    if (n % 20 === 0) await sleep(1);
  }
  const slow = ts.audit.of("slow_consumer");
  assert.equal(slow.length, 1, "closed as a slow consumer");
  console.log(`closed after ${n} live messages with ${slow[0]!.bufferedBytes} bytes unread`);
  assert.equal(slow[0]!.user, "sleepy");
  assert.ok(
    Number(slow[0]!.bufferedBytes) <= 5 * 1024 * 1024 + 64 * 1024,
    `held at most about MAX_BUFFERED_BYTES: ${slow[0]!.bufferedBytes}`,
  );
  await eventually(() => ts.server.stats().connections === 0, 5000, "the sleeper dropped");
  assert.deepEqual(ts.audit.of("disconnect").map((d) => d.code), [1008]);
  conn.close();
});

Deno.test("replay pacing: a client that reads nothing of a replay in a quiet room is closed with 1008", async () => {
  await using ts = await startServer({ ...ENV, HEARTBEAT_MS: "2000" });
  const epoch = await fill(ts, "big", 4000, 2000);
  const conn = await rawWebSocket(ts.port, `/ws?token=${await token("sleepy")}`);
  await sendRawText(conn, `{"type":"join","room":"big","since":{"offset":0,"epoch":"${epoch}"}}`);
  await eventually(() => ts.server.stats().connections === 0, 10_000, "the sleeper dropped");
  assert.equal(ts.audit.of("slow_consumer").length, 1);
  assert.deepEqual(ts.audit.of("disconnect").map((d) => d.code), [1008]);
  conn.close();
});

/** An in-process server whose history store (and bus) is Redis. */
async function startRedisServer(url: string): Promise<TestServer> {
  const env = { ...ENV, BUS: "redis", REDIS_URL: url, BUS_CHANNEL: `pace-${crypto.randomUUID()}` };
  const config = loadConfig({ JWT_SECRET: SECRET, ...env });
  const bus = await createBus(config);
  return await startServer(env, {
    bus,
    history: () => createHistoryStore(historyStoreSlice(config), {}),
  });
}

redisTest(
  "replay pacing (redis): a fast reader recovers 1,000 × 10 KB with no 1008, live messages after",
  async (redis) => {
    await using ts = await startRedisServer(redis.url);
    const epoch = await fill(ts, "ten", 1000, 10_000);
    const { got, closed, ms } = await recover(ts, "ten", epoch, 1050, 50);
    console.log(
      `redis 1000 x 10 KB: ${got.length} messages in ${ms.toFixed(0)} ms, closed ${
        JSON.stringify(closed)
      }`,
    );
    assert.equal(closed, null, `closed with ${JSON.stringify(closed)}`);
    assertInOrder(got, 1050);
    assert.equal(ts.audit.of("slow_consumer").length, 0);
  },
);

redisTest(
  "replay pacing (redis): a fast reader recovers 4,000 × 2 KB with no 1008, live messages after",
  async (redis) => {
    await using ts = await startRedisServer(redis.url);
    const epoch = await fill(ts, "two", 4000, 2000);
    const { got, closed, ms } = await recover(ts, "two", epoch, 4050, 50);
    console.log(
      `redis 4000 x 2 KB: ${got.length} messages in ${ms.toFixed(0)} ms, closed ${
        JSON.stringify(closed)
      }`,
    );
    assert.equal(closed, null, `closed with ${JSON.stringify(closed)}`);
    assertInOrder(got, 4050);
    assert.equal(ts.audit.of("slow_consumer").length, 0);
  },
);
