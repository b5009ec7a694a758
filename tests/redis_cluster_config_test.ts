/**
 * `REDIS_CLUSTER_NODES`: parsed into the cluster target every Redis part
 * shares, exclusive with `REDIS_URL` and `REDIS_SENTINELS`, each mistake
 * named on one line; and the slot of a key as Redis computes it.
 */
import assert from "node:assert/strict";
import { SECRET } from "./_helpers.ts";
import { loadConfig } from "../lib/config.ts";
import { keySlot } from "../lib/redis_cluster.ts";

const base = { JWT_SECRET: SECRET, BUS: "redis" };

function issues(env: Record<string, string>): string[] {
  try {
    loadConfig({ ...base, ...env });
    return [];
  } catch (err) {
    return (err as Error).message.split("\n");
  }
}

Deno.test("cluster config: REDIS_CLUSTER_NODES instead of REDIS_URL, with REDIS_PASSWORD", () => {
  const config = loadConfig({
    ...base,
    REDIS_CLUSTER_NODES: " 10.0.0.1:7000, redis-b:7001 ,",
    REDIS_PASSWORD: "data-secret",
  });
  assert.deepEqual(config.store.redis?.url, {
    cluster: [{ host: "10.0.0.1", port: 7000 }, { host: "redis-b", port: 7001 }],
    password: "data-secret",
  });
  assert.equal(config.store.kind, "redis");
});

Deno.test("cluster config: each mistake named on one line", () => {
  assert.deepEqual(issues({ REDIS_CLUSTER_NODES: "h:1", REDIS_URL: "redis://h" }), [
    "REDIS_CLUSTER_NODES: set only one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES",
  ]);
  assert.deepEqual(
    issues({ REDIS_CLUSTER_NODES: "h:1", REDIS_SENTINELS: "s:2", REDIS_SENTINEL_NAME: "m" }),
    ["REDIS_CLUSTER_NODES: set only one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES"],
  );
  assert.deepEqual(issues({ REDIS_CLUSTER_NODES: "h:1", REDIS_SENTINEL_NAME: "m" }), [
    "REDIS_SENTINEL_NAME: applies only with REDIS_SENTINELS (REDIS_URL carries its own credentials)",
  ]);
  assert.deepEqual(issues({ REDIS_CLUSTER_NODES: "h:1", BUS_CHANNEL: "app{1}" }), [
    "BUS_CHANNEL: must not contain { or } with REDIS_CLUSTER_NODES (each room is its keys' hash tag)",
  ]);
  assert.ok(
    issues({ REDIS_CLUSTER_NODES: "no-port" }).includes(
      "REDIS_CLUSTER_NODES: each entry must be host:port",
    ),
  );
  assert.ok(
    issues({ REDIS_CLUSTER_NODES: "h:70000" }).some((line) =>
      line.startsWith("REDIS_CLUSTER_NODES:")
    ),
  );
});

Deno.test("keySlot: CRC16 of the key or of its hash tag, as Redis documents it", () => {
  // The examples of the Redis Cluster specification.
  assert.equal(keySlot("123456789"), 0x31c3 % 16384);
  assert.equal(keySlot("{user1000}.following"), keySlot("{user1000}.followers"));
  // An empty tag does not count: the whole key is hashed.
  assert.notEqual(keySlot("foo{}{bar}"), keySlot("bar"));
  assert.equal(keySlot("foo{{bar}}zap"), keySlot("{bar"));
  assert.equal(keySlot("foo{bar}{zap}"), keySlot("bar"));
  assert.notEqual(keySlot("realtime:history:{a}"), keySlot("realtime:history:{b}"));
});
