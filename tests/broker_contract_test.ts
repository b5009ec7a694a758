/**
 * Runs the broker contract (tests/_broker_contract.ts) unchanged against
 * every strategy, each built by `composeBroker` from a bus and a history
 * store as the combinations table (lib/broker/table.ts) says: per-isolate
 * (memory store) on the memory and BroadcastChannel buses, shared-store
 * (KV store behind BroadcastChannel), Redis (the script stores and
 * publishes) and KV (the append is the publication).
 *
 * @module
 */
import assert from "node:assert/strict";
import { composeBroker } from "../lib/broker/from_config.ts";
import { COMBINATIONS } from "../lib/broker/table.ts";
import { BroadcastChannelBus } from "../lib/bus/broadcast_channel.ts";
import { KvBus } from "../lib/bus/kv.ts";
import { MemoryBus, MemoryHub } from "../lib/bus/memory.ts";
import { createRedisBus } from "../lib/bus/redis.ts";
import { KvHistoryStore } from "../lib/store/history/kv.ts";
import { MemoryHistoryStore } from "../lib/store/history/memory.ts";
import { createRedisHistoryStore } from "../lib/store/history/redis.ts";
import type { Broker } from "../lib/broker/types.ts";
import { brokerCases, type BrokerFixture } from "./_broker_contract.ts";
import { openCaseKv, redisClusterSuite, redisSuite, runContract } from "./_contract.ts";

const closing = (nodes: readonly Broker[], after = () => Promise.resolve()) => async () => {
  for (const broker of nodes) await broker.close();
  await after();
};

runContract("broker", brokerCases, {
  name: "per-isolate (memory bus, memory store)",
  open() {
    const hub = new MemoryHub();
    const nodes = [0, 1].map(() =>
      composeBroker(new MemoryBus({ hub }), new MemoryHistoryStore())
    ) as [Broker, Broker];
    return Promise.resolve({ expected: "per-isolate", nodes, close: closing(nodes) });
  },
});

runContract("broker", brokerCases, {
  name: "per-isolate (broadcast bus, memory store)",
  open() {
    const channel = `broker-${crypto.randomUUID()}`;
    const nodes = [0, 1].map(() =>
      composeBroker(new BroadcastChannelBus({ channel }), new MemoryHistoryStore())
    ) as [Broker, Broker];
    return Promise.resolve({ expected: "per-isolate", nodes, close: closing(nodes) });
  },
});

runContract("broker", brokerCases, {
  name: "shared-store (broadcast bus, KV store)",
  async open(): Promise<BrokerFixture> {
    const db = await openCaseKv(true);
    const channel = `broker-${crypto.randomUUID()}`;
    const nodes = [0, 1].map(() =>
      composeBroker(new BroadcastChannelBus({ channel }), new KvHistoryStore({ kv: db.kv }))
    ) as [Broker, Broker];
    return { expected: "shared-store", nodes, close: closing(nodes, () => db.close()) };
  },
});

const redis = redisSuite();
runContract("broker", brokerCases, {
  name: "redis (redis bus, redis store)",
  ...redis.hooks,
  async open(): Promise<BrokerFixture> {
    const { url } = redis.server;
    const prefix = redis.prefix();
    const nodes: Broker[] = [];
    for (let i = 0; i < 2; i++) {
      const bus = await createRedisBus({ url, prefix });
      nodes.push(composeBroker(bus, await createRedisHistoryStore({ url, prefix })));
    }
    return { expected: "redis", nodes: nodes as [Broker, Broker], close: closing(nodes) };
  },
});

const cluster = redisClusterSuite();
runContract("broker", brokerCases, {
  name: "redis cluster (sharded pub/sub bus, redis store)",
  ...cluster.hooks,
  async open(): Promise<BrokerFixture> {
    const url = cluster.target;
    const prefix = cluster.prefix();
    const nodes: Broker[] = [];
    for (let i = 0; i < 2; i++) {
      const bus = await createRedisBus({ url, prefix });
      nodes.push(composeBroker(bus, await createRedisHistoryStore({ url, prefix })));
    }
    return { expected: "redis", nodes: nodes as [Broker, Broker], close: closing(nodes) };
  },
});

runContract("broker", brokerCases, {
  name: "kv (kv bus, KV store)",
  async open(): Promise<BrokerFixture> {
    const db = await openCaseKv(true);
    const nodes = [0, 1].map(() =>
      composeBroker(new KvBus({ kv: db.kv }), new KvHistoryStore({ kv: db.kv }))
    ) as [Broker, Broker];
    return { expected: "kv", nodes, close: closing(nodes, () => db.close()) };
  },
});

Deno.test("the README's Scaling table is the combinations table", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const lines = readme.split("\n");
  const table = lines.slice(lines.findIndex((l) => l.startsWith("| `BUS` ↓ · store →")));
  assert.ok(table.length < lines.length, "the README has the table");
  for (const [bus, row] of Object.entries(COMBINATIONS)) {
    const line = table.find((l) => l.startsWith(`| \`${bus}\` `));
    assert.ok(line !== undefined, `a README row for BUS=${bus}`);
    const cells = line.split("|").slice(2, 5).map((cell) => cell.trim());
    assert.deepEqual(
      cells,
      Object.values(row).map(({ broker, gives }) =>
        broker === null ? `refused (${gives})` : `**${broker}**: ${gives}`
      ),
    );
  }
});
