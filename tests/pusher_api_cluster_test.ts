/**
 * The Pusher HTTP API across two server processes over one Redis (the bus
 * and `STORE=redis`): an event triggered on one node reaches a `pusher-js`
 * subscriber on the other, and both nodes answer the channel queries alike.
 *
 * @module
 */
import assert from "node:assert/strict";
import PusherServer from "pusher";
import { eventually, SECRET } from "./_helpers.ts";
import type { ServerProcess } from "./_process.ts";
import { APP, APP_ENV, disconnect, nextEvent, Pusher, subscribed, waitState } from "./_pusher.ts";
import { redisTest, startRedisNode } from "./_redis.ts";

const ENV = { ...APP_ENV, JWT_SECRET: SECRET, STORE: "redis" };

function sdkFor(node: ServerProcess): PusherServer {
  return new PusherServer({
    appId: APP.id,
    key: APP.key,
    secret: APP.secret,
    host: "127.0.0.1",
    port: String(node.port),
    useTLS: false,
  });
}

/** A `pusher-js` client of `node`, in presence channels as `userId`. */
async function clientOf(node: ServerProcess, userId: string): Promise<Pusher> {
  const sdk = sdkFor(node);
  const client = new Pusher(APP.key, {
    cluster: "mt1",
    wsHost: "127.0.0.1",
    wsPort: node.port,
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    channelAuthorization: {
      endpoint: "/unused",
      transport: "ajax",
      customHandler: ({ socketId, channelName }, callback) => {
        const member = channelName.startsWith("presence-") ? { user_id: userId } : undefined;
        callback(null, sdk.authorizeChannel(socketId, channelName, member));
      },
    },
  });
  await waitState(client, "connected");
  return client;
}

redisTest(
  "over Redis: triggered on one node, received on the other; both nodes answer the channel API alike",
  async (redis) => {
    const channel = `api-${crypto.randomUUID()}`;
    await using a = await startRedisNode(redis.url, channel, { env: ENV });
    await using b = await startRedisNode(redis.url, channel, { env: ENV });
    const onA = await clientOf(a, "ann");
    const onB = await clientOf(b, "ben");
    try {
      const news = await subscribed(onA, "news");
      await subscribed(onA, "presence-team");
      await subscribed(onB, "presence-team");
      const received = nextEvent(news, "flash");
      await sdkFor(b).trigger("news", "flash", { from: "b" });
      assert.deepEqual(await received, { from: "b" });
      for (const node of [a, b]) {
        const sdk = sdkFor(node);
        const get = async (path: string, params: Record<string, string> = {}) =>
          await (await sdk.get({ path, params })).json();
        await eventually(async () =>
          (await get("/channels/presence-team", { info: "user_count" })).user_count === 2
        );
        assert.deepEqual(await get("/channels/news", { info: "subscription_count" }), {
          occupied: true,
          subscription_count: 1,
        }, `news on ${node.port}`);
        const users = (await get("/channels/presence-team/users")) as { users: { id: string }[] };
        assert.deepEqual(users.users.map((u) => u.id).sort(), ["ann", "ben"]);
        assert.deepEqual(
          await get("/channels", { filter_by_prefix: "presence-", info: "user_count" }),
          { channels: { "presence-team": { user_count: 2 } } },
          `presence list on ${node.port}`,
        );
      }
    } finally {
      await Promise.all([disconnect(onA), disconnect(onB)]);
    }
  },
);
