/**
 * Revocation across real server processes: to every isolate of
 * `deno serve --parallel` over BroadcastChannel, and between nodes on one
 * Redis: carried by the bus to the node holding the sockets, kept in the
 * store for a node that starts later, and healed by the periodic sync when a
 * bus message never came.
 *
 * @module
 */
import assert from "node:assert/strict";
import { RedisRevocationStore } from "../lib/store/revocations/redis.ts";
import { type Client, connect, rawHandshake, SECRET, sleep, token } from "./_helpers.ts";
import { type ServerProcess, spawnParallel } from "./_process.ts";
import { redisTest, startRedisNode } from "./_redis.ts";

const API_KEY = "revocation-scaling-api-key-0123456789abcdef";

/** `deno task start` on the Redis bus; `syncMs` is how often it re-reads the store. */
function startNode(redisUrl: string, channel: string, syncMs: number): Promise<ServerProcess> {
  return startRedisNode(redisUrl, channel, {
    env: { JWT_SECRET: SECRET, API_KEY, REVOCATION_SYNC_MS: String(syncMs) },
  });
}

async function revoke(node: ServerProcess, method: string, body: unknown) {
  const res = await fetch(`${node.httpUrl}/api/revoke`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

async function connectWith(node: ServerProcess, jwt: string): Promise<Client> {
  return (await connect(node.wsUrl, { protocols: ["bearer", jwt] })).client;
}

/** The status of a WebSocket handshake with this token (401 when refused). */
async function handshakeStatus(node: ServerProcess, jwt: string): Promise<number> {
  return (await rawHandshake(node.port, "/ws", { authorization: `Bearer ${jwt}` })).status;
}

/** Resolves with the close event, or rejects after `ms`. */
function closedWithin(client: Client, ms: number): Promise<{ code: number; reason: string }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not closed within ${ms} ms`)), ms);
  });
  return Promise.race([client.closed, timeout]).finally(() => clearTimeout(timer));
}

function startParallel(): Promise<ServerProcess> {
  return spawnParallel({
    JWT_SECRET: SECRET,
    HOSTNAME: "127.0.0.1",
    LOG_LEVEL: "error",
    BUS: "broadcast",
    BUS_CHANNEL: `revoke-parallel-${crypto.randomUUID()}`,
    API_KEY,
  });
}

async function stopAll(nodes: (ServerProcess | undefined)[]): Promise<void> {
  await Promise.all(nodes.map((n) => n?.stop()));
}

async function closeAll(clients: Client[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
}

Deno.test("parallel: a revocation taken by one isolate closes the user's sockets on every isolate", async () => {
  await using server = await startParallel();
  const clients: Client[] = [];
  try {
    // Each new connection goes to one of the isolates: connect until alice
    // has sockets on both (isolates may start taking connections a bit apart).
    const isolates = new Set<unknown>();
    const old = await token("alice");
    // One socket per isolate: surplus ones are closed, so a slow second
    // isolate cannot push alice past MAX_CONNECTIONS_PER_USER on the first.
    const deadline = Date.now() + 20_000;
    while (isolates.size < 2 && Date.now() < deadline) {
      const { client, welcome } = await connect(server.wsUrl, { protocols: ["bearer", old] });
      if (isolates.has(welcome.instanceId)) {
        await client.close();
        await sleep(100);
        continue;
      }
      clients.push(client);
      isolates.add(welcome.instanceId);
    }
    assert.equal(isolates.size, 2, "alice has sockets on both isolates");
    const res = await revoke(server, "POST", { userId: "alice" });
    assert.equal(res.status, 202);
    for (const c of clients) {
      assert.deepEqual(await closedWithin(c, 5000), { code: 4403, reason: "revoked" });
    }
    assert.ok(
      (res.body.closed as number) < clients.length,
      "the isolate that took the call closed only its own; the other closed the rest",
    );
    for (let i = 0; i < 4; i++) assert.equal(await handshakeStatus(server, old), 401);
  } finally {
    await closeAll(clients);
  }
});

redisTest(
  "redis: revoked on node B, closed on node A; refused everywhere, also by a node started later",
  async (redis) => {
    const channel = `revoke-${crypto.randomUUID()}`;
    // The sync is a minute away: within the test, only the bus can carry it.
    let nodeA: ServerProcess | undefined, nodeB: ServerProcess | undefined;
    let nodeC: ServerProcess | undefined;
    const clients: Client[] = [];
    try {
      [nodeA, nodeB] = await Promise.all([
        startNode(redis.url, channel, 60_000),
        startNode(redis.url, channel, 60_000),
      ]);
      const old = await token("alice");
      const a1 = await connectWith(nodeA, old);
      const a2 = await connectWith(nodeA, await token("alice", { jti: "second" }));
      const bob = await connectWith(nodeA, await token("bob"));
      clients.push(a1, a2, bob);

      const started = performance.now();
      const res = await revoke(nodeB, "POST", { userId: "alice", reason: "account compromised" });
      assert.equal(res.status, 202);
      assert.equal(res.body.closed, 0, "no socket of alice's is on B");
      for (const c of [a1, a2]) {
        assert.deepEqual(await closedWithin(c, 5000), { code: 4403, reason: "revoked" });
      }
      console.log(
        `  revoked on B → both sockets on A closed after ${
          (performance.now() - started).toFixed(0)
        } ms`,
      );
      assert.equal((await bob.request({ type: "ping", id: "p" })).type, "pong");

      assert.equal(await handshakeStatus(nodeA, old), 401, "reconnect to A");
      assert.equal(await handshakeStatus(nodeB, old), 401, "reconnect to B");
      const revokedAt = Date.now();
      const fresh = await token("alice", { issuedAt: Math.floor(revokedAt / 1000) + 1 });
      const back = await connectWith(nodeA, fresh);
      clients.push(back);

      // A node that was not running at the time loads it from Redis at start.
      nodeC = await startNode(redis.url, channel, 60_000);
      assert.equal(await handshakeStatus(nodeC, old), 401, "a node started later refuses it");
      const onC = await connectWith(nodeC, fresh);
      clients.push(onC);

      // Lifted on C: A hears it by the bus.
      assert.equal((await revoke(nodeC, "DELETE", { userId: "alice" })).status, 200);
      let status = 401;
      for (let i = 0; i < 100 && status !== 101; i++) {
        status = await handshakeStatus(nodeA, old);
        if (status !== 101) await sleep(50);
      }
      assert.equal(status, 101, "the old token works on A again");
    } finally {
      await closeAll(clients);
      await stopAll([nodeA, nodeB, nodeC]);
    }
  },
);

redisTest(
  "redis: a revocation whose bus message was lost arrives by the periodic sync",
  async (redis) => {
    const channel = `revoke-sync-${crypto.randomUUID()}`;
    let node: ServerProcess | undefined;
    const store = new RedisRevocationStore({ url: redis.url, prefix: channel });
    const clients: Client[] = [];
    try {
      node = await startNode(redis.url, channel, 300);
      const jwt = await token("carol", { jti: "t-1" });
      const client = await connectWith(node, jwt);
      clients.push(client);
      // Written to Redis as another node would, but with no bus message at all.
      const now = Date.now();
      await store.add({
        kind: "jti",
        subject: "t-1",
        revokedAt: now,
        until: now + 60_000,
        by: "t",
      });
      assert.deepEqual(await closedWithin(client, 5000), { code: 4403, reason: "revoked" });
      assert.equal(await handshakeStatus(node, jwt), 401);
    } finally {
      await closeAll(clients);
      await store.close();
      await node?.stop();
    }
  },
);
