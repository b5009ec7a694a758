/**
 * Runs the bus contract (tests/_bus_contract.ts) unchanged against every
 * transport. A new transport adds one `busContract` call. What only one
 * transport does (outages, garbage on the wire, drop injection) stays in its
 * own tests/bus_<transport>_test.ts.
 *
 * @module
 */
import { BroadcastChannelBus } from "../lib/bus/broadcast_channel.ts";
import { KvBus } from "../lib/bus/kv.ts";
import { MemoryBus, MemoryHub } from "../lib/bus/memory.ts";
import { createRedisBus } from "../lib/bus/redis.ts";
import { busContract, CONTRACT_MAX_ENVELOPE_BYTES as maxEnvelopeBytes } from "./_bus_contract.ts";
import { RedisServer, redisServerPath, skipRedis } from "./_redis.ts";
import { RedisCluster } from "./_redis_cluster.ts";

const nothing = () => Promise.resolve();

busContract({
  name: "memory (one hub)",
  transport: "memory",
  echoesPositioned: false,
  open(count) {
    const hub = new MemoryHub();
    const buses = Array.from({ length: count }, () => new MemoryBus({ hub, maxEnvelopeBytes }));
    return Promise.resolve({ buses, close: nothing });
  },
});

busContract({
  name: "broadcast (one channel)",
  transport: "broadcast",
  echoesPositioned: false,
  open(count) {
    const channel = `contract-${crypto.randomUUID()}`;
    const buses = Array.from(
      { length: count },
      () => new BroadcastChannelBus({ channel, maxEnvelopeBytes }),
    );
    return Promise.resolve({ buses, close: nothing });
  },
});

let redis: RedisServer | undefined;

busContract({
  name: "redis",
  transport: "redis",
  // A history script publishes on the instance's behalf on the same channel.
  echoesPositioned: true,
  ignore: skipRedis,
  async before() {
    if (redisServerPath === undefined) throw new Error("CI is set but redis-server is not on PATH");
    redis = await RedisServer.start(redisServerPath);
  },
  async after() {
    await redis?.stop();
  },
  async open(count) {
    const url = redis!.url;
    // A prefix per case keeps cases apart on one server.
    const prefix = `contract-${crypto.randomUUID()}`;
    const buses = [];
    for (let i = 0; i < count; i++) {
      buses.push(await createRedisBus({ url, prefix, maxEnvelopeBytes }));
    }
    return { buses, close: nothing };
  },
});

let cluster: RedisCluster | undefined;

busContract({
  name: "redis cluster (sharded pub/sub)",
  transport: "redis",
  echoesPositioned: true,
  ignore: skipRedis,
  async before() {
    cluster = await RedisCluster.start();
  },
  async after() {
    await cluster?.[Symbol.asyncDispose]();
  },
  async open(count) {
    const url = cluster!.target;
    const prefix = `contract-${crypto.randomUUID()}`;
    const buses = [];
    for (let i = 0; i < count; i++) {
      buses.push(await createRedisBus({ url, prefix, maxEnvelopeBytes }));
    }
    return { buses, close: nothing };
  },
});

/** KV: every bus of a case on one database, through one handle or one per bus. */
function kvContract(name: string, path: () => Promise<string>, handles: "shared" | "own"): void {
  busContract({
    name,
    transport: "kv",
    echoesPositioned: false,
    async open(count) {
      const file = await path();
      const shared = await Deno.openKv(file);
      const dbs = [shared];
      for (let i = 1; handles === "own" && i < count; i++) dbs.push(await Deno.openKv(file));
      const buses = Array.from(
        { length: count },
        (_, i) => new KvBus({ kv: dbs[i] ?? shared, maxEnvelopeBytes }),
      );
      return {
        buses,
        async close() {
          for (const db of dbs) db.close();
          if (file !== ":memory:") {
            await Deno.remove(file.slice(0, file.lastIndexOf("/")), { recursive: true });
          }
        },
      };
    },
  });
}

const tempFile = async () => `${await Deno.makeTempDir({ prefix: "kv-bus-" })}/db.kv`;
kvContract("kv (:memory:)", () => Promise.resolve(":memory:"), "shared");
kvContract("kv (file, one handle per bus)", tempFile, "own");
