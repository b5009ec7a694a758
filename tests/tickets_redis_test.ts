/**
 * Tickets on Redis (`STORE=redis`, the default with `BUS=redis`): a ticket
 * issued by one node opens a socket on another, once.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, rawHandshake, SECRET, token } from "./_helpers.ts";
import { type ServerProcess, startAll } from "./_process.ts";
import { redisTest, startRedisNode } from "./_redis.ts";

function startNode(redisUrl: string, channel: string): Promise<ServerProcess> {
  return startRedisNode(redisUrl, channel, { env: { JWT_SECRET: SECRET } });
}

redisTest("tickets on redis: issued on node A, redeemed once on node B", async (redis) => {
  const channel = `tickets-${crypto.randomUUID()}`;
  await using nodes = await startAll([
    startNode(redis.url, channel),
    startNode(redis.url, channel),
  ]);
  const [a, b] = nodes;
  const health = await (await fetch(`${a.httpUrl}/healthz`)).json();
  assert.deepEqual(health.store, { status: "ok", transport: "redis" });
  const res = await fetch(`${a.httpUrl}/ticket`, {
    method: "POST",
    headers: { authorization: `Bearer ${await token("alice")}` },
  });
  assert.equal(res.status, 200);
  const { ticket } = await res.json();
  const { client, welcome } = await connect(`${b.wsUrl}?ticket=${ticket}`);
  assert.equal(welcome.userId, "alice");
  await client.close();
  const again = await rawHandshake(b.port, `/ws?ticket=${ticket}`);
  assert.equal(again.status, 401, "a ticket works once, on any node");
  const onA = await rawHandshake(a.port, `/ws?ticket=${ticket}`);
  assert.equal(onA.status, 401);
  const keys = await redis.command("KEYS", `${channel}:ticket:*`);
  assert.equal(keys, "*0", "redeemed tickets leave no key behind");
});
