/**
 * Presence across real server processes: two nodes on Redis (convergence,
 * then a SIGKILL and the dead node's users leaving within the TTL, and no
 * Redis key left behind), and two `deno serve --parallel` isolates on
 * BroadcastChannel.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Client, connect, eventually, type Msg, SECRET, sleep, token } from "./_helpers.ts";
import { type ServerProcess, spawnParallel, startAll } from "./_process.ts";
import { type RedisServer, redisTest, startRedisNode } from "./_redis.ts";

const TTL_MS = 3000;

const BASE_ENV = {
  JWT_SECRET: SECRET,
  HOSTNAME: "127.0.0.1",
  LOG_LEVEL: "error",
  PRESENCE: "1",
  PRESENCE_TTL_MS: String(TTL_MS),
  HANDSHAKES_PER_MINUTE_PER_IP: "100000",
  RATE_LIMIT_CAPACITY: "10000",
};

/** A client that keeps the presence of one room from its state and diffs. */
class Watcher {
  readonly client: Client;
  readonly instanceId: string;
  count = -1;
  readonly members = new Set<string>();
  leaves = 0;

  constructor(client: Client, instanceId: string) {
    this.client = client;
    this.instanceId = instanceId;
    client.ws.addEventListener("message", (e) => {
      for (const line of String(e.data).split("\n")) {
        const m = JSON.parse(line) as Msg;
        if (m.type === "presence_state") {
          this.members.clear();
          for (const member of m.members as { userId: string }[]) this.members.add(member.userId);
          this.count = m.count as number;
        } else if (m.type === "presence_diff") {
          for (const j of m.joins as { userId: string }[]) this.members.add(j.userId);
          for (const l of m.leaves as { userId: string }[]) {
            this.members.delete(l.userId);
            this.leaves++;
          }
          this.count = m.count as number;
        }
      }
    });
  }
}

async function watch(url: string, userId: string, room: string): Promise<Watcher> {
  const { client, welcome } = await connect(`${url}?token=${await token(userId)}`);
  const watcher = new Watcher(client, welcome.instanceId as string);
  client.send({ type: "join", room, id: "j" });
  await client.next((m) => m.id === "j" && m.type === "joined");
  // Frames are read through the listener above; keep the inbox from growing.
  client.inbox.length = 0;
  return watcher;
}

async function closeAll(watchers: Watcher[]): Promise<void> {
  await Promise.all(watchers.map((w) => w.client.close()));
}

/** `deno task start` on the Redis bus. */
function startNode(redisUrl: string, busChannel: string): Promise<ServerProcess> {
  return startRedisNode(redisUrl, busChannel, { env: BASE_ENV });
}

async function presenceKeys(redis: RedisServer, busChannel: string): Promise<number> {
  const reply = await redis.command(
    "EVAL",
    "return #redis.call('KEYS', ARGV[1])",
    "0",
    `${busChannel}:presence*`,
  );
  return Number(reply.slice(1));
}

redisTest(
  "redis: 100 users on each of two nodes converge to 200; a SIGKILLed node's users leave within the TTL",
  async (redis) => {
    const busChannel = `presence-${crypto.randomUUID()}`;
    await using nodes = await startAll([
      startNode(redis.url, busChannel),
      startNode(redis.url, busChannel),
    ]);
    const [nodeA, nodeB] = nodes;
    const watchers: Watcher[] = [];
    try {
      const onA: Watcher[] = [];
      const onB: Watcher[] = [];
      for (let i = 0; i < 100; i++) {
        const [a, b] = await Promise.all([
          watch(nodeA.wsUrl, `a-${i}`, "hall"),
          watch(nodeB.wsUrl, `b-${i}`, "hall"),
        ]);
        onA.push(a);
        onB.push(b);
        watchers.push(a, b);
      }
      const joinedAt = performance.now();
      await eventually(
        () => watchers.every((w) => w.count === 200 && w.members.size === 200),
        2000,
        "every client's count and member list at 200",
      );
      const converged = performance.now() - joinedAt;

      Deno.kill(nodeB.pid, "SIGKILL");
      const killedAt = performance.now();
      await eventually(
        () => onA.every((w) => w.count === 100 && w.leaves === 100),
        TTL_MS + 2000,
        "100 leaves on every survivor",
      );
      const healed = performance.now() - killedAt;
      const asked = await onA[0]!.client.request({ type: "presence", room: "hall", id: "p" });
      assert.equal(asked.count, 100);
      assert.ok(
        (asked.members as { userId: string }[]).every((m) => m.userId.startsWith("a-")),
        "only node A's users are left",
      );
      console.log(
        `converged ${converged.toFixed(0)} ms after the last join; healed ${
          healed.toFixed(0)
        } ms after SIGKILL`,
      );

      // Node A's users leave: nothing of either node stays in Redis.
      await closeAll(onA);
      await eventually(
        async () => await presenceKeys(redis, busChannel) === 0,
        TTL_MS + 2000,
        "no presence key left in Redis",
      );
    } finally {
      await closeAll(watchers);
    }
  },
);

redisTest(
  "redis: a node restarted after a crash leaves no ghosts; join/leave cycles leave no key",
  async (redis) => {
    const busChannel = `presence-${crypto.randomUUID()}`;
    let nodeA: ServerProcess | undefined;
    let nodeB: ServerProcess | undefined;
    let nodeB2: ServerProcess | undefined;
    const watchers: Watcher[] = [];
    try {
      [nodeA, nodeB] = await Promise.all([
        startNode(redis.url, busChannel),
        startNode(redis.url, busChannel),
      ]);
      const a = await watch(nodeA.wsUrl, "alice", "room");
      const b = await watch(nodeB.wsUrl, "bob", "room");
      watchers.push(a, b);
      await eventually(() => a.count === 2 && b.count === 2, 3000);
      Deno.kill(nodeB.pid, "SIGKILL");
      nodeB2 = await startNode(redis.url, busChannel);
      // A newcomer on the restarted node may briefly see the dead node's bob,
      // until its entries expire; then nobody does.
      const c = await watch(nodeB2.wsUrl, "carol", "room");
      watchers.push(c);
      await eventually(
        () => [a, c].every((w) => w.count === 2 && !w.members.has("bob")),
        TTL_MS + 2000,
        "bob gone everywhere",
      );

      // 1,000 join/leave cycles by one connection on the restarted node.
      const cycler = (await connect(`${nodeB2.wsUrl}?token=${await token("cycler")}`)).client;
      for (let i = 0; i < 1000; i++) {
        const room = i % 2 === 0 ? "room" : `r${i % 10}`;
        cycler.send({ type: "join", room, id: `j${i}` });
        cycler.send({ type: "leave", room, id: `l${i}` });
        if (i % 100 === 99) await cycler.next((m) => m.id === `l${i}`, 10_000);
      }
      await cycler.close();
      await eventually(() => a.count === 2 && c.count === 2, 3000);
      await closeAll(watchers);
      await eventually(
        async () => await presenceKeys(redis, busChannel) === 0,
        TTL_MS + 2000,
        "no presence key left in Redis",
      );
    } finally {
      await closeAll(watchers);
      await nodeA?.stop();
      await nodeB?.stop();
      await nodeB2?.stop();
    }
  },
);

redisTest(
  "redis: an outage longer than the TTL drops nobody who is still there, and presence heals",
  async (redis) => {
    const busChannel = `presence-${crypto.randomUUID()}`;
    await using nodes = await startAll([
      startNode(redis.url, busChannel),
      startNode(redis.url, busChannel),
    ]);
    const [nodeA, nodeB] = nodes;
    const watchers: Watcher[] = [];
    try {
      const a = await watch(nodeA.wsUrl, "alice", "room");
      const b = await watch(nodeB.wsUrl, "bob", "room");
      const dave = await watch(nodeB.wsUrl, "dave", "room");
      watchers.push(a, b);
      await eventually(() => a.count === 3 && b.count === 3, 3000);

      // A short outage (longer than a command timeout, shorter than the TTL): dave leaves
      // meanwhile, so neither his store delete nor his announcement gets through.
      redis.pause();
      await dave.client.close();
      await sleep(2500);
      redis.resume();
      await eventually(
        () => a.count === 2 && !a.members.has("dave"),
        TTL_MS + 3000,
        "dave gone on alice's node after the short outage",
      );
      assert.equal(a.leaves, 1);

      // Frozen longer than the TTL: every liveness key and entry has expired when it wakes.
      redis.pause();
      await sleep(TTL_MS + 1500);
      redis.resume();
      // A newcomer joins after the outage; everyone ends up seeing all three.
      const c = await watch(nodeB.wsUrl, "carol", "room");
      watchers.push(c);
      await eventually(
        () => watchers.every((w) => w.count === 3),
        TTL_MS + 5000,
        "everyone at 3 after the outage",
      ).catch((err) => {
        throw new Error(
          `${err.message}: ${
            JSON.stringify(watchers.map((w) => [w.count, [...w.members], w.leaves]))
          }\nA: ${nodeA?.output().slice(-2000)}\nB: ${nodeB?.output().slice(-2000)}`,
        );
      });
      await sleep(TTL_MS);
      assert.equal(a.leaves, 1, "alice never saw bob leave (only dave)");
      assert.equal(b.leaves, 1, "bob never saw alice leave (only dave)");
      assert.ok(watchers.every((w) => w.count === 3));
    } finally {
      await closeAll(watchers);
    }
  },
);

/** `deno task start:parallel` as users run it, pinned to two isolates. */
function startParallel(busChannel: string): Promise<ServerProcess> {
  return spawnParallel({ ...BASE_ENV, BUS: "broadcast", BUS_CHANNEL: busChannel });
}

Deno.test("parallel: users on two isolates over BroadcastChannel converge to one presence", async () => {
  await using server = await startParallel(`presence-${crypto.randomUUID()}`);
  const watchers: Watcher[] = [];
  try {
    // Keep connecting until both isolates hold users (see scaling_test.ts).
    for (let i = 0; i < 200; i++) {
      watchers.push(await watch(server.wsUrl, `user-${i}`, "hall"));
      const isolates = new Set(watchers.map((w) => w.instanceId));
      if (watchers.length >= 40 && isolates.size === 2) break;
      if (isolates.size === 1 && watchers.length % 10 === 0) {
        await sleep(100);
      }
    }
    const isolates = new Set(watchers.map((w) => w.instanceId));
    assert.equal(isolates.size, 2, "users landed on both isolates");
    const total = watchers.length;
    await eventually(
      () => watchers.every((w) => w.count === total && w.members.size === total),
      2000,
      `every client's count at ${total}`,
    );
    // Users of one isolate leave: the other isolate's users see them go.
    const [first] = isolates;
    const leaving = watchers.filter((w) => w.instanceId === first);
    const staying = watchers.filter((w) => w.instanceId !== first);
    await closeAll(leaving);
    await eventually(
      () => staying.every((w) => w.count === staying.length),
      2000,
      "the other isolate's users gone",
    );
  } finally {
    await closeAll(watchers);
  }
});
