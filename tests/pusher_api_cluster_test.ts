/**
 * The Pusher HTTP API across server processes: two nodes over one Redis
 * (the bus and `STORE=redis`) and two `deno serve --parallel` isolates over
 * KV. An event triggered through one reaches `pusher-js` subscribers on the
 * other, and both answer the channel queries alike.
 *
 * @module
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import PusherServer from "pusher";
import { eventually, SECRET, sleep } from "./_helpers.ts";
import { type ServerProcess, spawnParallel } from "./_process.ts";
import { signedRequest } from "./_pusher_api.ts";
import {
  APP,
  APP_ENV,
  disconnect,
  nextEvent,
  Pusher,
  recordChannel,
  subscribed,
  waitState,
} from "./_pusher.ts";
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
      // `news` has its one subscriber on a: both list it, and both stop once it leaves.
      const listOf = async (node: ServerProcess) =>
        await (await sdkFor(node).get({ path: "/channels", params: {} })).json();
      for (const node of [a, b]) {
        await eventually(async () =>
          isDeepStrictEqual(await listOf(node), { channels: { news: {}, "presence-team": {} } })
        );
      }
      onA.unsubscribe("news");
      for (const node of [a, b]) {
        await eventually(async () =>
          isDeepStrictEqual(await listOf(node), { channels: { "presence-team": {} } })
        );
      }
    } finally {
      await Promise.all([disconnect(onA), disconnect(onB)]);
    }
  },
);

Deno.test("deno serve --parallel with STORE=kv: triggers through either isolate reach every subscriber; both answer alike", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pusher-api-kv-" });
  try {
    await using server = await spawnParallel({
      ...ENV,
      HOSTNAME: "127.0.0.1",
      LOG_LEVEL: "error",
      HANDSHAKES_PER_MINUTE_PER_IP: "100000",
      STORE: "kv",
      KV_PATH: `${dir}/realtime.kv`,
      BUS: "broadcast",
      BUS_CHANNEL: `pusher-api-${crypto.randomUUID()}`,
    });
    const clients: Pusher[] = [];
    try {
      // Each client is its own connection: the kernel spreads them over the isolates.
      for (let i = 0; i < 4; i++) clients.push(await clientOf(server, `u${i}`));
      const seen = await Promise.all(
        clients.map(async (c) => recordChannel(await subscribed(c, "presence-team"))),
      );
      const expected = { occupied: true, user_count: 4, subscription_count: 4 };
      const stateVia = async (client?: Deno.HttpClient) =>
        JSON.parse(
          (await signedRequest(server.httpUrl, "GET", "/channels/presence-team", {
            app: APP,
            params: { info: "user_count,subscription_count" },
            ...(client === undefined ? {} : { client }),
          })).body,
        );
      await eventually(async () => isDeepStrictEqual(await stateVia(), expected));
      // A fresh HTTP connection per round, until the rounds have reached both isolates.
      const instances = new Set<string>();
      let rounds = 0;
      // Under load the second isolate may start accepting a while after the first: 20 s.
      const until = Date.now() + 20_000;
      while (rounds < 6 || (instances.size < 2 && rounds < 200 && Date.now() < until)) {
        if (rounds >= 6) await sleep(100);
        const http = Deno.createHttpClient({});
        try {
          const health = await fetch(`${server.httpUrl}/healthz`, { client: http });
          instances.add((await health.json()).instanceId);
          assert.deepEqual(await stateVia(http), expected, `round ${rounds}`);
          const sent = await signedRequest(server.httpUrl, "POST", "/events", {
            app: APP,
            body: JSON.stringify({
              name: `e${rounds}`,
              data: String(rounds),
              channel: "presence-team",
            }),
            client: http,
          });
          assert.equal(sent.status, 200);
        } finally {
          http.close();
        }
        rounds++;
      }
      assert.equal(instances.size, 2, "the rounds reached both isolates");
      const names = Array.from({ length: rounds }, (_, i) => `e${i}`);
      await eventually(() => seen.every((s) => s.length === rounds), 10_000);
      // Each event once; rounds through different isolates may cross on the way.
      for (const s of seen) assert.deepEqual(s.map((e) => e.event).sort(), names.sort());
    } finally {
      await Promise.all(clients.map(disconnect));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
