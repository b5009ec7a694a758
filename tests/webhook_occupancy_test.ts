/**
 * The cluster-wide native events through real servers and a real receiver:
 * `room_occupied`/`room_vacated`, `user_online`/`user_offline` and
 * `presence_joined`/`presence_left`, once per first and last anywhere (per
 * user, not per connection); two Redis nodes produce one of each, not two;
 * a node killed with SIGKILL has its rooms and users vacated and offline by
 * the node that finds it dead.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Client,
  connect,
  connectAs,
  eventually,
  join,
  SECRET as JWT_SECRET,
  sleep,
  startServer,
  token,
} from "./_helpers.ts";
import { startAll } from "./_process.ts";
import { redisTest, startRedisNode } from "./_redis.ts";
import { startReceiver } from "./_webhook_receiver.ts";

const SECRET = "webhook-secret-that-is-long-enough-0123";

/** The events received, as `name room/user` lines (ids and times left out), in order. */
function lines(events: Record<string, unknown>[]): string[] {
  return events.map((e) => `${e.name} ${[e.room, e.userId].filter((x) => x).join("/")}`);
}

Deno.test("webhooks: occupied/vacated, online/offline and presence joined/left, once each", async () => {
  await using receiver = startReceiver({ secret: SECRET });
  await using ts = await startServer({
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: SECRET,
    PRESENCE: "1",
  });
  const alice1 = await connectAs(ts, "alice", { info: { name: "Alice" } });
  const alice2 = await connectAs(ts, "alice");
  const bob = await connectAs(ts, "bob");
  await join(alice1, "lobby");
  await join(alice2, "lobby");
  await join(bob, "lobby");
  await eventually(() => receiver.accepted().length === 5, 3000, "the arrivals");
  await sleep(600);
  assert.deepEqual(lines(receiver.accepted()).sort(), [
    "presence_joined lobby/alice",
    "presence_joined lobby/bob",
    "room_occupied lobby",
    "user_online alice",
    "user_online bob",
  ], "per user, not per connection");
  const joined = receiver.accepted().find((e) =>
    e.name === "presence_joined" && e.userId === "alice"
  );
  assert.deepEqual(joined?.info, { name: "Alice" }, "presence info of the joining connection");
  await alice1.close();
  await sleep(700);
  assert.equal(receiver.accepted().length, 5, "alice still has a connection: nothing");
  await alice2.close();
  await bob.close();
  await eventually(() => receiver.accepted().length === 10, 3000, "the departures");
  assert.deepEqual(lines(receiver.accepted().slice(5)).sort(), [
    "presence_left lobby/alice",
    "presence_left lobby/bob",
    "room_vacated lobby",
    "user_offline alice",
    "user_offline bob",
  ]);
  const order = lines(receiver.accepted());
  assert.ok(order.indexOf("room_occupied lobby") < order.indexOf("room_vacated lobby"));
});

Deno.test("webhooks: WEBHOOK_EVENTS picks; a room without presence has no presence events", async () => {
  await using receiver = startReceiver({ secret: SECRET });
  await using ts = await startServer({
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_EVENTS: "room_vacated,presence_joined",
  });
  const alice = await connectAs(ts, "alice");
  await join(alice, "lobby");
  await alice.close();
  await eventually(() => receiver.accepted().length === 1, 3000, "room_vacated");
  await sleep(600);
  assert.deepEqual(lines(receiver.accepted()), ["room_vacated lobby"]);
});

const EVENTS = "room_occupied,room_vacated,user_online,user_offline,presence_joined,presence_left";

redisTest(
  "webhooks (redis): two nodes produce one room_occupied and one room_vacated",
  async (redis) => {
    await using receiver = startReceiver({ secret: SECRET });
    const channel = `wh-${crypto.randomUUID()}`;
    const env = {
      JWT_SECRET,
      WEBHOOK_URL: receiver.url,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_EVENTS: EVENTS,
      STORE: "redis",
      PRESENCE: "1",
    };
    await using nodes = await startAll([
      startRedisNode(redis.url, channel, { env }),
      startRedisNode(redis.url, channel, { env }),
    ]);
    const clients: Client[] = [];
    for (const [i, node] of nodes.entries()) {
      const t = await token(i === 0 ? "alice" : "bob", { rooms: ["*"] });
      for (let k = 0; k < 2; k++) {
        const { client } = await connect(`${node.wsUrl}?token=${t}`);
        await join(client, "lobby");
        clients.push(client);
      }
    }
    await eventually(() => receiver.accepted().length >= 5, 5000, "the arrivals");
    for (const client of clients) await client.close();
    await eventually(() => receiver.accepted().length >= 10, 5000, "the departures");
    await sleep(1000);
    assert.deepEqual(lines(receiver.accepted()).sort(), [
      "presence_joined lobby/alice",
      "presence_joined lobby/bob",
      "presence_left lobby/alice",
      "presence_left lobby/bob",
      "room_occupied lobby",
      "room_vacated lobby",
      "user_offline alice",
      "user_offline bob",
      "user_online alice",
      "user_online bob",
    ]);
  },
);

redisTest(
  "webhooks (redis): a node killed with SIGKILL is vacated by the node that finds it dead",
  async (redis) => {
    await using receiver = startReceiver({ secret: SECRET });
    const channel = `wh-${crypto.randomUUID()}`;
    const env = {
      JWT_SECRET,
      WEBHOOK_URL: receiver.url,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_EVENTS: EVENTS,
      STORE: "redis",
      PRESENCE_TTL_MS: "1000",
    };
    await using survivor = await startRedisNode(redis.url, channel, { env });
    const doomed = await startRedisNode(redis.url, channel, { env });
    try {
      const t = await token("carol");
      const { client } = await connect(`${doomed.wsUrl}?token=${t}`);
      await join(client, "doomed-room");
      await eventually(() => receiver.accepted().length === 2, 5000, "occupied and online");
      Deno.kill(doomed.pid, "SIGKILL");
      await client.closed;
    } finally {
      await doomed.stop();
    }
    const killedAt = Date.now();
    await eventually(() => receiver.accepted().length === 4, 8000, "vacated and offline");
    const after = Date.now() - killedAt;
    assert.deepEqual(lines(receiver.accepted().slice(2)).sort(), [
      "room_vacated doomed-room",
      "user_offline carol",
    ]);
    assert.ok(after < 5000, `reaped ${after} ms after the kill (TTL 1 s)`);
    await sleep(1500);
    assert.equal(receiver.accepted().length, 4, "once");
    await survivor.stop();
  },
);
