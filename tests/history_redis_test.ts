/**
 * History rooms on the Redis store, end to end with real node processes: one
 * order per room across nodes, a rolling deploy that loses and duplicates
 * nothing, and a Redis outage that refuses history publishes instead of
 * losing them.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect as connectClient, type RejoinInfo } from "../packages/client/src/client.ts";
import type { RealtimeClient, RoomMessage } from "../packages/client/src/client.ts";
import { loadConfig } from "../lib/config.ts";
import { createBus } from "../lib/bus/from_config.ts";
import { createHistoryStore, historyStoreSlice } from "../lib/store/history/from_config.ts";
import {
  type Client,
  collectRoom,
  connect,
  eventually,
  joinRoom,
  type Msg,
  SECRET,
  sleep,
  startServer,
  token,
  writePolicy,
} from "./_helpers.ts";
import { type ServerProcess, startAll } from "./_process.ts";
import { redisTest, startRedisNode } from "./_redis.ts";
import { CuttableProxy } from "./_proxy.ts";

const NODE_ENV = {
  JWT_SECRET: SECRET,
  HOSTNAME: "127.0.0.1",
  LOG_LEVEL: "error",
  BUS: "redis",
  HISTORY_SIZE: "5000",
  RATE_LIMIT_CAPACITY: "100000",
  RATE_LIMIT_REFILL_PER_SEC: "100000",
  HANDSHAKES_PER_MINUTE_PER_IP: "1000000",
  SHUTDOWN_GRACE_MS: "2000",
};

function startNode(redisUrl: string, channel: string): Promise<ServerProcess> {
  return startRedisNode(redisUrl, channel, { env: NODE_ENV });
}

async function connectTo(node: ServerProcess, sub: string): Promise<Client> {
  return (await connect(`${node.wsUrl}?token=${await token(sub)}`)).client;
}

redisTest("history on redis: publishers on two nodes, one order on every member", async (redis) => {
  const channel = `hist-${crypto.randomUUID()}`;
  await using nodes = await startAll([
    startNode(redis.url, channel),
    startNode(redis.url, channel),
  ]);
  const clients: Client[] = [];
  try {
    const [a, b] = nodes;
    const members = [
      await connectTo(a, "ma1"),
      await connectTo(a, "ma2"),
      await connectTo(b, "mb1"),
      await connectTo(b, "mb2"),
    ];
    const publishers = [
      await connectTo(a, "pa1"),
      await connectTo(a, "pa2"),
      await connectTo(b, "pb"),
    ];
    clients.push(...members, ...publishers);
    const logs = members.map((m) => collectRoom(m, "ordered"));
    for (const c of [...members, ...publishers]) await joinRoom(c, "ordered");
    const perPublisher = 100;
    // All three publish at once, without waiting for acks: the order is the store's, not the test's.
    await Promise.all(publishers.map(async (p, i) => {
      for (let n = 0; n < perPublisher; n++) {
        p.send({ type: "message", room: "ordered", payload: { p: i, n } });
        if (n % 10 === 0) await sleep(1);
      }
    }));
    const total = perPublisher * publishers.length;
    await eventually(
      () => logs.every((l) => l.length >= total),
      15_000,
      `${total} on every member`,
    );
    await sleep(200);
    const reference = logs[0]!.map((m) => JSON.stringify(m.payload));
    for (const [i, log] of logs.entries()) {
      assert.equal(log.length, total, `member ${i}: nothing twice`);
      assert.deepEqual(log.map((m) => m.offset), Array.from({ length: total }, (_, k) => k + 1));
      assert.deepEqual(
        log.map((m) => JSON.stringify(m.payload)),
        reference,
        `member ${i}: same order`,
      );
      assert.ok(log.every((m) => m.epoch === log[0]!.epoch));
    }
    // Each publisher's own messages keep their order within the total order.
    for (let p = 0; p < publishers.length; p++) {
      const own = logs[0]!.map((m) => m.payload as { p: number; n: number }).filter((x) =>
        x.p === p
      );
      assert.deepEqual(own.map((x) => x.n), [...Array(perPublisher).keys()]);
    }
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
  }
});

redisTest(
  "history on redis: rolling deploy, 200 clients, zero loss, zero duplicates",
  async (redis) => {
    const channel = `hist-${crypto.randomUUID()}`;
    await using nodes = await startAll([
      startNode(redis.url, channel),
      startNode(redis.url, channel),
    ]);
    const [nodeA, nodeB] = nodes;
    const clients: RealtimeClient[] = [];
    let publisher: Client | undefined;
    try {
      const count = 200;
      const got: number[][] = [];
      const rejoins: RejoinInfo[] = [];
      const instances = new Set<string>();
      for (let i = 0; i < count; i++) {
        const received: number[] = [];
        got.push(received);
        // The browser client's own logic: A first, then B when A goes away.
        const rt = connectClient([nodeA.wsUrl, nodeB.wsUrl], {
          token: () => token(`user-${i}`),
          reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
          pingIntervalMs: 0,
        });
        rt.on("rejoin", (_room, info) => rejoins.push(info));
        clients.push(rt);
      }
      await Promise.all(
        clients.map((rt, i) =>
          rt.join<{ n: number }>("deploy", (payload, message: RoomMessage<{ n: number }>) => {
            assert.ok(message.offset !== undefined);
            got[i]!.push(payload.n);
          })
        ),
      );
      for (const rt of clients) {
        instances.add(rt.instanceId ?? "");
      }
      assert.equal(instances.size, 1, "every client starts on node A");

      publisher = await connectTo(nodeB, "publisher");
      await joinRoom(publisher, "deploy");
      let sent = 0;
      let stop = false;
      const pump = (async () => {
        while (!stop) {
          const ack: Msg = await publisher!.request({
            type: "message",
            room: "deploy",
            payload: { n: sent },
            id: `p${sent}`,
          });
          assert.equal(ack.type, "ack", JSON.stringify(ack));
          sent++;
          await sleep(5);
        }
      })();
      await eventually(() => sent >= 100, 10_000, "100 messages before the deploy");
      const status = await nodeA.stop(); // SIGTERM: every client gets 1001 and moves to B
      assert.equal(status.code, 0);
      await eventually(
        () => clients.every((rt) => rt.state === "open" && rt.instanceId !== [...instances][0]),
        20_000,
        "every client on node B",
      );
      const atDeploy = sent;
      await eventually(() => sent >= atDeploy + 100, 10_000, "100 messages after the deploy");
      stop = true;
      await pump;
      const expected = [...Array(sent).keys()];
      await eventually(
        () => got.every((r) => r.length >= sent),
        20_000,
        `all ${sent} messages on every client`,
      );
      await sleep(200);
      for (const [i, received] of got.entries()) {
        assert.deepEqual(received, expected, `client ${i}: every message once, in order`);
      }
      assert.equal(rejoins.length, count, "one rejoin per client");
      assert.ok(rejoins.every((r) => r.recovered), "every rejoin recovered");
    } finally {
      await Promise.all(clients.map((rt) => rt.close()));
      await publisher?.close().catch(() => {});
    }
  },
);

redisTest(
  "history on redis: an outage answers unavailable; the retried publish lands once",
  async (redis) => {
    // "hist" keeps history, "plain" does not: the outage treats them differently.
    await using policy = await writePolicy([{ room: "hist", history: { size: 100, ttlSec: 600 } }]);
    const env = {
      BUS: "redis",
      REDIS_URL: redis.url,
      BUS_CHANNEL: `hist-${crypto.randomUUID()}`,
      ROOM_POLICY: policy.path,
      API_KEY: "outage-test-api-key-0123456789abcdef",
    };
    const config = loadConfig({ JWT_SECRET: SECRET, ...env });
    const bus = await createBus(config);
    await using ts = await startServer(env, {
      bus,
      history: () => createHistoryStore(historyStoreSlice(config), {}),
    });
    const reader = await connectTo({ wsUrl: ts.wsUrl } as ServerProcess, "reader");
    const rt = connectClient(ts.wsUrl, {
      token: () => token("writer"),
      requestTimeoutMs: 30_000,
      pingIntervalMs: 0,
    });
    try {
      await joinRoom(reader, "hist");
      await joinRoom(reader, "plain");
      const histLog = collectRoom(reader, "hist");
      await rt.join("hist", () => {});
      await rt.join("plain", () => {});
      await rt.publish("hist", "before");
      await eventually(() => histLog.length === 1, 3000, "the first message");

      await redis.stop();
      await eventually(() => ts.server.health().status === "degraded", 10_000, "degraded");
      const refused = await reader.request({
        type: "message",
        room: "hist",
        payload: "x",
        id: "r1",
      });
      assert.equal(refused.type, "error");
      assert.equal(refused.code, "unavailable");
      assert.ok(Number(refused.retryAfterMs) > 0);
      // A room without history keeps local delivery.
      const plainLog = collectRoom(reader, "plain");
      await rt.publish("plain", "still here");
      await eventually(() => plainLog.length === 1, 3000, "local delivery of a plain room");

      // The client retries on its own, with the same id, until the store is back.
      const retried = rt.publish("hist", "retried");
      await sleep(1500);
      assert.equal(histLog.length, 1, "nothing delivered while Redis is down");
      const api = await fetch(`${ts.httpUrl}/api/publish`, {
        method: "POST",
        headers: { authorization: `Bearer ${env.API_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ room: "hist", payload: "api", idempotencyKey: "k" }),
      });
      assert.equal(api.status, 503);
      assert.ok(Number(api.headers.get("retry-after")) >= 1);
      assert.equal((await api.json()).error.code, "unavailable");
      await redis.restart();
      await retried;
      await eventually(() => histLog.length === 2, 10_000, "the retried message");
      await sleep(300);
      assert.deepEqual(histLog.map((m) => m.payload), ["before", "retried"]);
      // Redis lost its data (no persistence): a new epoch, offsets from 1.
      assert.notEqual(histLog[1]!.epoch, histLog[0]!.epoch);
      assert.equal(histLog[1]!.offset, 1);
      assert.ok(ts.server.health().history.status === "ok");
    } finally {
      await rt.close();
      await reader.close();
    }
  },
);

redisTest(
  "history on redis: a node cut from Redis catches up when it reconnects, with no later message",
  async (redis) => {
    await using proxy = new CuttableProxy(redis.port);
    const channel = `hist-${crypto.randomUUID()}`;
    const start = async (url: string) => {
      const env = { BUS: "redis", REDIS_URL: url, BUS_CHANNEL: channel, HISTORY_SIZE: "100" };
      const config = loadConfig({ JWT_SECRET: SECRET, ...env });
      const bus = await createBus(config);
      return await startServer(env, {
        bus,
        history: () => createHistoryStore(historyStoreSlice(config), {}),
      });
    };
    await using a = await start(`redis://127.0.0.1:${proxy.port}`);
    await using b = await start(redis.url);
    const onA = await connectTo({ wsUrl: a.wsUrl } as ServerProcess, "on-a");
    const onB = await connectTo({ wsUrl: b.wsUrl } as ServerProcess, "on-b");
    try {
      await joinRoom(onA, "cut");
      await joinRoom(onB, "cut");
      const log = collectRoom(onA, "cut");
      await onB.request({ type: "message", room: "cut", payload: 0, id: "m0" });
      await eventually(() => log.length === 1, 3000, "the first message on A");

      // A's Redis link goes silent: it does not know, and hears none of these.
      proxy.blackhole("both");
      for (let n = 1; n <= 10; n++) {
        await onB.request({ type: "message", room: "cut", payload: n, id: `m${n}` });
      }
      await sleep(200);
      assert.equal(log.length, 1, "A heard nothing while cut");
      // The link breaks for good; A reconnects and reads what it missed.
      proxy.heal();
      proxy.cut();
      await eventually(() => log.length === 11, 10_000, "the ten missed messages on A");
      assert.deepEqual(log.map((m) => m.payload), [...Array(11).keys()]);
      assert.deepEqual(log.map((m) => m.offset), Array.from({ length: 11 }, (_, i) => i + 1));
      assert.equal(a.server.health().history.gaps, 0, "read back, not lost");
    } finally {
      await onA.close();
      await onB.close();
    }
  },
);
