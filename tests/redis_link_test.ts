/**
 * The supervised Redis connection shared by the bus and the Redis stores:
 * one outage report, one recovery, `onOpen` before `ok`, deadlines that mark
 * the link down, and no timer left by `close()` (run with --trace-leaks).
 *
 * @module
 */
import assert from "node:assert/strict";
import { RedisLink } from "../lib/redis_link.ts";
import { eventually, sleep } from "./_helpers.ts";
import { redisTest } from "./_redis.ts";

redisTest("redis link: reports an outage once and the recovery once", async (redis) => {
  const errors: Error[] = [];
  const events: string[] = [];
  const link: RedisLink = new RedisLink({
    url: redis.url,
    name: "Redis test link",
    whileDown: "tests wait",
    connections: 2,
    maxReconnectDelayMs: 200,
    onOpen: async (clients): Promise<void> => {
      assert.equal(link.status, "degraded");
      await clients[1]!.ping();
      events.push("open");
    },
    onConnect: (reconnected) => events.push(reconnected ? "reconnected" : "connected"),
    onError: (err) => errors.push(err),
    onRecover: () => events.push("recovered"),
  });
  try {
    assert.equal(await link.ready(5000), true);
    assert.equal(link.status, "ok");
    assert.deepEqual(events, ["open", "connected"]);
    await redis.stop();
    await eventually(() => link.status === "degraded", 5000, "degraded status");
    // Several failed attempts while down, one report.
    await sleep(600);
    assert.equal(errors.length, 1);
    assert.match(
      errors[0]!.message,
      /^Redis test link lost the connection to redis:\/\/127\.0\.0\.1:\d+ \(.*\): tests wait$/,
    );
    await redis.restart();
    assert.equal(await link.ready(5000), true);
    assert.deepEqual(events, ["open", "connected", "open", "recovered", "reconnected"]);
    assert.equal(errors.length, 1);
  } finally {
    await link.close();
  }
  assert.equal(link.status, "degraded");
  assert.equal(link.detail, "closed");
  assert.equal(await link.ready(1000), false);
});

redisTest("redis link: a command past its deadline marks the link down", async (redis) => {
  const errors: Error[] = [];
  const link = new RedisLink({
    url: redis.url,
    name: "Redis test link",
    whileDown: "tests wait",
    commandTimeoutMs: 200,
    maxReconnectDelayMs: 200,
    onError: (err) => errors.push(err),
  });
  try {
    assert.equal(await link.ready(5000), true);
    const client = link.clients![0]!;
    redis.pause();
    await assert.rejects(
      link.deadline(client, client.sendCommand(["PING"]), () => new Error("too slow")),
      /too slow/,
    );
    redis.resume();
    assert.equal(link.status, "degraded");
    assert.equal(link.detail, "too slow");
    assert.equal(errors.length, 1);
    assert.ok(link.retryAfterMs() >= 100 && link.retryAfterMs() <= 200);
    assert.equal(await link.ready(5000), true);
  } finally {
    await link.close();
  }
});

redisTest("redis link: closing during an outage leaves no timer", async (redis) => {
  await redis.stop();
  const errors: Error[] = [];
  const link = new RedisLink({
    url: redis.url,
    name: "Redis test link",
    whileDown: "tests wait",
    connectTimeoutMs: 500,
    onError: (err) => errors.push(err),
  });
  assert.equal(await link.ready(300), false);
  assert.match(errors[0]?.message ?? "", /^Redis test link cannot reach /);
  await link.close();
  assert.equal(link.clients, undefined);
});

Deno.test("redis link: rejects a bad URL without echoing it", () => {
  assert.throws(
    () => new RedisLink({ url: "http://user:secret@host", name: "Redis x", whileDown: "" }),
    (err: unknown) => err instanceof TypeError && !err.message.includes("secret"),
  );
});
