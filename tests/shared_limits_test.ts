/**
 * Shared limits (`LIMITS_STORE`): the per-user message bucket and the
 * per-user connection cap hold across isolates and nodes (n isolates no
 * longer give n times the budget), on Redis and on KV; a Redis outage falls
 * back to per-isolate limits, visible in `/healthz` and `/metrics`, and
 * limits are shared again once Redis is back.
 *
 * @module
 */
import assert from "node:assert/strict";
import { RateLimiter } from "../lib/core/rate_limiter.ts";
import { SharedCounts, SharedLimits } from "../lib/core/shared_limits.ts";
import { SharedRateLimiter } from "../lib/core/shared_rate_limiter.ts";
import { MemoryLimitsStore } from "../lib/store/limits/memory.ts";
import { RedisLimitsStore } from "../lib/store/limits/redis.ts";
import { Client, eventually, FakeClock, SECRET, sleep, token } from "./_helpers.ts";
import { freePort, type ServerProcess, spawnMain, spawnParallel } from "./_process.ts";
import { redisTest } from "./_redis.ts";

const RULE = { capacity: 50, refillPerSec: 10 };

/** Lets the store's answers (promises) arrive. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

Deno.test("two isolates' limiters on one store: one budget, a lease per round trip", async () => {
  const clock = new FakeClock();
  const store = new MemoryLimitsStore({ clock });
  const isolates = ["a", "b"].map((node) =>
    new SharedRateLimiter({
      ...RULE,
      clock,
      shared: new SharedLimits({ store, node, clock }),
      space: "m",
    })
  );
  let allowed = 0;
  for (let i = 0; i < 200; i++) {
    if (isolates[i % 2]!.take("ann") === 0) allowed++;
    await settle();
  }
  // One bucket of 50, plus at most one lease (5) on credit per isolate.
  assert.ok(allowed >= 50 && allowed <= 60, `allowed ${allowed} of 200 (unshared: 100)`);
  const local = [new RateLimiter({ ...RULE, clock }), new RateLimiter({ ...RULE, clock })];
  let unshared = 0;
  for (let i = 0; i < 200; i++) if (local[i % 2]!.take("ann") === 0) unshared++;
  assert.equal(unshared, 100, "per-isolate buckets: n times the budget");
  clock.advance(1000); // 10 tokens refilled
  let later = 0;
  for (let i = 0; i < 40; i++) {
    if (isolates[i % 2]!.take("ann") === 0) later++;
    await settle();
  }
  assert.ok(later <= 10 + 10, `after 1 s: ${later}`);
  await store.close();
});

Deno.test("a steady rate within the budget costs a store call per lease, not per message", async () => {
  const clock = new FakeClock();
  const store = new MemoryLimitsStore({ clock });
  const shared = new SharedLimits({ store, node: "a", clock });
  const limiter = new SharedRateLimiter({ ...RULE, clock, shared, space: "m" });
  let refused = 0;
  for (let i = 0; i < 500; i++) {
    clock.advance(110); // just under 10/s
    if (limiter.take("ann") !== 0) refused++;
    await settle();
  }
  assert.equal(refused, 0);
  const perDecision = shared.calls / 500;
  console.log(`store calls per decision at a steady rate: ${perDecision.toFixed(3)}`);
  assert.ok(perDecision <= 0.25, `${shared.calls} calls for 500 decisions`);
  await store.close();
});

Deno.test("a store that does not answer: per-isolate limits, and shared again once it answers", async () => {
  const clock = new FakeClock();
  // A port nothing listens on: every call fails at once.
  const store = new RedisLimitsStore({ url: `redis://127.0.0.1:${freePort()}`, clock });
  const changes: boolean[] = [];
  const shared = new SharedLimits({ store, node: "a", clock, onChange: (up) => changes.push(up) });
  const limiter = new SharedRateLimiter({ ...RULE, clock, shared, space: "m" });
  const caps = new SharedCounts(shared);
  limiter.take("ann");
  await eventually(() => !shared.up, 3000, "the store found down");
  assert.equal(shared.health().status, "degraded");
  let allowed = 0;
  for (let i = 0; i < 60; i++) if (limiter.take("ann") === 0) allowed++;
  assert.equal(allowed, 50, "this isolate's own bucket");
  const claim = await caps.claim("u:ann", 1);
  assert.ok(claim !== undefined, "the cap is this isolate's while the store is down");
  claim.release();
  assert.deepEqual(changes, [false]);
  await caps.close();
  await store.close();
});

/** Connects `user` to `url` and answers the socket, or the refusal's status (1006 to a client). */
async function tryConnect(url: string, user: string): Promise<Client | undefined> {
  const client = new Client(`${url}?token=${await token(user)}`);
  try {
    await client.opened;
    await client.nextOf("welcome");
    return client;
  } catch {
    await client.closed;
    return undefined;
  }
}

/** Sends `n` pings with ids, 2 ms apart, and counts the pongs (the others are rate_limited). */
async function pings(client: Client, n: number, tag: string): Promise<number> {
  for (let i = 0; i < n; i++) {
    client.send({ type: "ping", id: `${tag}-${i}` });
    await sleep(2);
  }
  let pongs = 0;
  for (let i = 0; i < n; i++) {
    const reply = await client.next((m) => m.id === `${tag}-${i}`, 5000);
    if (reply.type === "pong") pongs++;
  }
  return pongs;
}

async function health(server: ServerProcess): Promise<Record<string, unknown>> {
  return await (await fetch(`${server.httpUrl}/healthz`)).json();
}

const LIMITS_ENV = {
  JWT_SECRET: SECRET,
  LOG_LEVEL: "error",
  MAX_CONNECTIONS_PER_USER: "3",
  RATE_LIMIT_CAPACITY: "30",
  RATE_LIMIT_REFILL_PER_SEC: "1",
  LIMITS_TTL_MS: "3000",
};

/** A user's cap and bucket hold across `urls` (the isolates or nodes of one cluster). */
async function budgetsHold(urls: string[]): Promise<void> {
  const opened: Client[] = [];
  try {
    // Connections spread over the isolates: 3 allowed in all, not 3 per isolate.
    for (let i = 0; i < 8; i++) {
      const client = await tryConnect(urls[i % urls.length]!, "capped");
      if (client !== undefined) opened.push(client);
    }
    assert.equal(opened.length, 3, "the per-user cap holds across isolates");
    const talkers: Client[] = [];
    for (let i = 0; i < 3; i++) {
      const client = await tryConnect(urls[i % urls.length]!, "talker");
      assert.ok(client !== undefined);
      talkers.push(client);
    }
    opened.push(...talkers);
    const pongs = (await Promise.all(talkers.map((c, i) => pings(c, 30, `t${i}`))))
      .reduce((a, b) => a + b, 0);
    // One bucket of 30 (+ about a token a second, + at most a lease of 3 on credit and
    // one held per isolate), not 30 per isolate.
    assert.ok(pongs >= 30 && pongs <= 30 + 3 + 4 * 3, `pongs ${pongs} of 90`);
  } finally {
    await Promise.all(opened.map((c) => c.close()));
  }
}

redisTest(
  "two --parallel isolates on Redis: one cap and one bucket per user; an outage falls back, and heals",
  async (redis) => {
    await using server = await spawnParallel({
      ...LIMITS_ENV,
      BUS: "redis",
      REDIS_URL: redis.url,
      BUS_CHANNEL: `limits-${crypto.randomUUID()}`,
      LIMITS_STORE: "redis",
    });
    await budgetsHold([server.wsUrl]);
    assert.equal((await health(server)).status, "ok");
    assert.deepEqual((await health(server)).limits, { status: "ok", transport: "redis" });
    await redis.stop();
    await eventually(
      async () => {
        const report = await health(server);
        return report.status === "degraded" &&
          (report.limits as { status: string }).status === "degraded";
      },
      8000,
      "/healthz degraded with a limits entry",
    );
    const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
    assert.match(metrics, /realtime_limits_shared 0/);
    // Per-isolate limits meanwhile: the user can connect.
    const during = await tryConnect(server.wsUrl, "during");
    assert.ok(during !== undefined, "connections are admitted on local limits");
    await during.close();
    await redis.restart();
    await eventually(
      async () => {
        const report = await health(server);
        return (report.limits as { status: string }).status === "ok";
      },
      10_000,
      "limits shared again",
    );
  },
);

Deno.test("two nodes on one KV database: one cap and one bucket per user", async () => {
  const dir = await Deno.makeTempDir({ prefix: "limits-kv-" });
  try {
    const env = { ...LIMITS_ENV, LIMITS_STORE: "kv", KV_PATH: `${dir}/db.kv` };
    await using a = await spawnMain(env);
    await using b = await spawnMain(env);
    await budgetsHold([a.wsUrl, b.wsUrl]);
    assert.deepEqual((await health(a)).limits, { status: "ok", transport: "kv" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
