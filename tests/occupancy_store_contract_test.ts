/**
 * Runs the occupancy store contract (tests/_occupancy_contract.ts) unchanged
 * against every backend: memory, Redis, and KV on a file and in memory.
 *
 * @module
 */
import { KvOccupancyStore } from "../lib/store/occupancy/kv.ts";
import { MemoryOccupancyStore } from "../lib/store/occupancy/memory.ts";
import { RedisOccupancyStore } from "../lib/store/occupancy/redis.ts";
import type { OccupancyStore } from "../lib/store/occupancy/types.ts";
import { KV_VARIANTS, openCaseKv, Opened, redisClusterSuite, redisSuite } from "./_contract.ts";
import { occupancyStoreContract } from "./_occupancy_contract.ts";

occupancyStoreContract({
  name: "memory",
  open() {
    const opened = new Opened<OccupancyStore>();
    return Promise.resolve({
      shared: false,
      open: () => opened.add(new MemoryOccupancyStore()),
      close: () => opened.close(),
    });
  },
});

const redis = redisSuite();
occupancyStoreContract({
  name: "redis",
  ...redis.hooks,
  open() {
    const { url } = redis.server;
    const prefix = redis.prefix();
    const opened = new Opened<OccupancyStore>();
    return Promise.resolve({
      shared: true,
      open: () => opened.add(new RedisOccupancyStore({ url, prefix })),
      close: () => opened.close(),
    });
  },
});

const cluster = redisClusterSuite();
occupancyStoreContract({
  name: "redis cluster",
  ...cluster.hooks,
  open() {
    const { target } = cluster;
    const prefix = cluster.prefix();
    const opened = new Opened<OccupancyStore>();
    return Promise.resolve({
      shared: true,
      open: () => opened.add(new RedisOccupancyStore({ url: target, prefix })),
      close: () => opened.close(),
    });
  },
});

for (const { name, inFile } of KV_VARIANTS) {
  occupancyStoreContract({
    name,
    async open() {
      const db = await openCaseKv(inFile);
      const opened = new Opened<OccupancyStore>();
      return {
        shared: true,
        open: () => opened.add(new KvOccupancyStore({ kv: db.kv })),
        async close() {
          await opened.close();
          await db.close();
        },
      };
    },
  });
}
