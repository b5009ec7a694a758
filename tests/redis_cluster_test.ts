/**
 * Redis Cluster with real processes on loopback: three primaries, a replica
 * each (`cluster-node-timeout` 1000), two server nodes (main.ts) on the bus
 * and every store through `REDIS_CLUSTER_NODES`. Two users chat in 100 rooms
 * spread over the three shards; the history of every room recovers; each
 * room's keys are in its one slot, and the rooms' sharded subscriptions are
 * spread over the shards. Then one shard's primary is killed (SIGKILL): its
 * replica takes over, the rooms of the other shards never pause, and the
 * killed shard's rooms resume with nothing acknowledged lost.
 */
import assert from "node:assert/strict";
import { type Client, connect, joinRoom, type Msg, SECRET, sleep, token } from "./_helpers.ts";
import { skipRedis, startRedisNode } from "./_redis.ts";
import { redisCliPath, RedisCluster } from "./_redis_cluster.ts";
import { type ServerProcess, startAll } from "./_process.ts";
import { keySlot } from "../lib/redis_cluster.ts";

const ROOMS = Array.from({ length: 100 }, (_, i) => `room-${i}`);

async function client(node: ServerProcess, sub: string): Promise<Client> {
  return (await connect(`${node.wsUrl}?token=${await token(sub, { rooms: ["*"] })}`)).client;
}

/** Publishes once; resolves with the reply (`ack`, or an error such as `unavailable`). */
function publish(c: Client, room: string, payload: unknown, id: string, timeoutMs = 3000) {
  return c.request({ type: "message", room, payload, id }, timeoutMs);
}

/** Sends with `id` until acknowledged, resending the same id after `unavailable` or silence. */
async function publishUntilAcked(c: Client, room: string, payload: unknown, id: string) {
  for (const end = Date.now() + 30_000; Date.now() < end;) {
    const reply = await publish(c, room, payload, id).catch(() => undefined);
    if (reply?.type === "ack") return Number(reply.offset);
    if (reply !== undefined) assert.equal(reply.code, "unavailable", JSON.stringify(reply));
    await sleep(Math.min(Number(reply?.retryAfterMs) || 100, 300));
  }
  throw new Error(`${id} in ${room} not acknowledged in time`);
}

/** Counts the `message` frames per room that `c` receives. */
function countMessages(c: Client): Map<string, Msg[]> {
  const got = new Map<string, Msg[]>();
  c.ws.addEventListener("message", (e) => {
    for (const line of String(e.data).split("\n")) {
      const m = JSON.parse(line) as Msg;
      if (m.type !== "message") continue;
      const list = got.get(String(m.room)) ?? [];
      list.push(m);
      got.set(String(m.room), list);
    }
  });
  return got;
}

async function until(what: string, done: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(50)) {
    if (await done()) return;
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms`);
}

async function healthy(node: ServerProcess): Promise<boolean> {
  const health = await (await fetch(`${node.httpUrl}/healthz`)).json() as { status?: string };
  return health.status === "ok";
}

Deno.test({
  name:
    "redis cluster: two nodes chat in 100 rooms over 3 shards, keys in one slot per room, sharded pub/sub spread; a shard's failover pauses only its rooms",
  ignore: skipRedis,
  async fn() {
    const started = performance.now();
    await using cluster = await RedisCluster.start({ replicas: 1 });
    const prefix = `cluster-${crypto.randomUUID()}`;
    const env = {
      JWT_SECRET: SECRET,
      HISTORY_SIZE: "1000",
      REDIS_CLUSTER_NODES: cluster.nodes,
      RATE_LIMIT_CAPACITY: "100000",
      RATE_LIMIT_REFILL_PER_SEC: "100000",
    };
    await using nodes = await startAll([
      startRedisNode("", prefix, { env }),
      startRedisNode("", prefix, { env }),
    ]);
    const [a, b] = nodes;
    const ranges = await cluster.slots();
    const primaryOfRoom = (room: string) => {
      const slot = keySlot(`${prefix}:history:{${room}}`);
      return ranges.find((r) => r.from <= slot && slot <= r.to)!.primary;
    };
    const byShard = Map.groupBy(ROOMS, primaryOfRoom);
    assert.equal(byShard.size, 3, "the 100 rooms fall on all three shards");

    const alice = await client(a, "alice");
    let bob = await client(b, "bob");
    try {
      // Chat: alice on node A, bob on node B, in every room.
      await Promise.all(ROOMS.map((room) => joinRoom(alice, room)));
      const joined = await Promise.all(ROOMS.map((room) => joinRoom(bob, room)));
      const bobGot = countMessages(bob);
      const acks = await Promise.all(ROOMS.map((room) => publish(alice, room, 1, `${room}-1`)));
      assert.ok(acks.every((r) => r.type === "ack" && r.offset === 1), JSON.stringify(acks[0]));
      await until("bob got one message per room", () => ROOMS.every((r) => bobGot.has(r)));

      // History recovers in every room: bob away while a second message is sent.
      await bob.close();
      await Promise.all(ROOMS.map((room) => publishUntilAcked(alice, room, 2, `${room}-2`)));
      bob = await client(b, "bob");
      const replayed = countMessages(bob);
      const rejoined = await Promise.all(
        ROOMS.map((room, i) => joinRoom(bob, room, { offset: 1, epoch: joined[i]!.epoch })),
      );
      assert.ok(rejoined.every((r) => r.recovered === true), JSON.stringify(rejoined[0]));
      await until(
        "bob recovered message 2 in every room",
        () =>
          ROOMS.every((room) => replayed.get(room)?.some((m) => m.payload === 2 && m.offset === 2)),
      );

      // Each room's keys in one slot, that of its name as hash tag; keys on every shard.
      const keys = [...(await cluster.keysByNode(`${prefix}:*`)).values()].flat();
      for (const room of ROOMS) {
        const own = keys.filter((key) => key.includes(`{${room}}`));
        assert.ok(own.length >= 3, `${room}: ${own}`); // history, meta, presence index (+ hashes)
        const slot = await cluster.keySlot(own[0]!);
        assert.equal(slot, keySlot(`{${room}}`), "Redis agrees with our slot");
        const inSlot = await cluster.onNode(primaryOfRoom(room), [
          "CLUSTER",
          "COUNTKEYSINSLOT",
          String(slot),
        ]);
        assert.equal(Number(inSlot), own.length, `${room}: every key in slot ${slot}`);
      }
      const check = await new Deno.Command(redisCliPath!, {
        args: ["--cluster", "check", `127.0.0.1:${cluster.ports[0]}`],
        stdout: "piped",
        stderr: "null",
      }).output();
      const report = new TextDecoder().decode(check.stdout);
      assert.match(report, /All 16384 slots covered/);
      const keyCounts = [...report.matchAll(/-> (\d+) keys \|/g)].map((m) => Number(m[1]));
      assert.ok(keyCounts.length === 3 && keyCounts.every((n) => n > 0), report);

      // Sharded subscriptions: each room's channel on its own shard only, both nodes on it.
      for (const [port, rooms] of byShard) {
        const channels = (await cluster.onNode(port, [
          "PUBSUB",
          "SHARDCHANNELS",
          `${prefix}:room:*`,
        ]) as string[]).map(String);
        for (const room of rooms) assert.ok(channels.includes(`${prefix}:room:{${room}}`), room);
        const foreign = ROOMS.filter((r) =>
          !rooms.includes(r) && channels.includes(`${prefix}:room:{${r}}`)
        );
        assert.deepEqual(foreign, [], `shard ${port} carries only its rooms`);
        const counts = await cluster.onNode(port, [
          "PUBSUB",
          "SHARDNUMSUB",
          `${prefix}:room:{${rooms[0]}}`,
        ]) as unknown[];
        assert.equal(Number(counts[1]), 2, "both server nodes subscribe on the room's shard");
      }

      // Failover: the primary of one shard is killed while every shard takes publishes.
      const [victim, victimRooms] = [...byShard][0]!;
      const otherRooms = ROOMS.filter((room) => !victimRooms.includes(room));
      // Another socket: one session's requests are answered in order.
      const carol = await client(a, "carol");
      await Promise.all(otherRooms.map((room) => joinRoom(carol, room)));
      let stop = false;
      let killedAt = 0;
      const otherAcks: number[] = [];
      const otherFailures: string[] = [];
      const others = (async () => {
        for (let i = 0; !stop; i++) {
          const room = otherRooms[i % otherRooms.length]!;
          const reply = await publish(carol, room, "o", `o-${i}`, 2000).catch((e) => ({
            type: "timeout",
            error: String(e),
          }));
          if (reply.type === "ack") otherAcks.push(performance.now());
          else otherFailures.push(`${room}: ${JSON.stringify(reply)}`);
        }
      })();
      await sleep(300);
      await cluster.kill(victim);
      killedAt = performance.now();
      const offsets: number[] = [];
      for (let i = 0; i < 10; i++) {
        const room = victimRooms[0]!;
        offsets.push(await publishUntilAcked(alice, room, `v${i}`, `v-${i}`));
      }
      const resumedMs = Math.round(performance.now() - killedAt);
      await sleep(300);
      stop = true;
      await others;
      await carol.close();

      assert.deepEqual(otherFailures, [], "rooms on the other shards never failed a publish");
      const during = otherAcks.filter((t) => t >= killedAt - 300);
      const longestGap = Math.max(...during.slice(1).map((t, i) => t - during[i]!));
      // Every publish was acknowledged; the gaps are those of a loaded machine, far from the
      // failover's seconds (`cluster-node-timeout` 1000 plus the replica's election).
      assert.ok(longestGap < 1500, `other shards' publishes paused ${Math.round(longestGap)} ms`);
      assert.deepEqual(offsets, Array.from({ length: 10 }, (_, i) => i + 3), "nothing lost");
      const now = await cluster.slots();
      assert.ok(!now.some((r) => r.primary === victim), "the replica took over the shard");
      assert.ok(resumedMs < 15_000, `the killed shard's rooms resumed after ${resumedMs} ms`);

      // Node B follows: bob hears the killed shard's room through its new primary.
      const room = victimRooms[0]!;
      await until(
        "bob got the killed shard's messages",
        () =>
          (replayed.get(room) ?? []).filter((m) => String(m.payload).startsWith("v")).length === 10,
      );
      const history = await bob.request({ type: "history", room, limit: 100, id: "h" });
      assert.deepEqual(
        (history.messages as Msg[]).map((m) => m.payload),
        [1, 2, ...Array.from({ length: 10 }, (_, i) => `v${i}`)],
      );
      await until("both nodes healthy again", async () => (await healthy(a)) && (await healthy(b)));
      console.log(
        `cluster failover: killed shard resumed after ${resumedMs} ms; other shards' longest gap ${
          Math.round(longestGap)
        } ms over ${during.length} acks; test ${Math.round(performance.now() - started)} ms`,
      );
    } finally {
      await alice.close();
      await bob.close();
    }
  },
});
