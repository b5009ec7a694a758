/**
 * The Pusher HTTP API end to end: the `pusher` Node SDK and a stdlib Python
 * backend publish through a real server to `pusher-js` 8 subscribers (and
 * raw Pusher sockets where the close matters); channel queries answer what
 * the subscribers did; hostile requests deliver nothing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { eventually, startServer } from "./_helpers.ts";
import { signedRequest } from "./_pusher_api.ts";
import {
  APP,
  connectPusher,
  disconnect,
  nextEvent,
  type Pusher,
  rawPusher,
  rawSocketId,
  recordChannel,
  serverSdk,
  startPusherServer,
  subscribed,
} from "./_pusher.ts";

const TEST_DIR = new URL(".", import.meta.url).pathname;

async function using<T>(clients: Pusher[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } finally {
    await Promise.all(clients.map(disconnect));
  }
}

Deno.test("the SDK triggers to pusher-js subscribers; socket_id is excluded; a batch arrives in order", async () => {
  await using ts = await startPusherServer();
  const alice = await connectPusher(ts);
  const bob = await connectPusher(ts);
  await using([alice, bob], async () => {
    const aliceSeen = recordChannel(await subscribed(alice, "news"));
    const bobSeen = recordChannel(await subscribed(bob, "news"));
    const sdk = serverSdk(ts.port);
    const res = await sdk.trigger("news", "headline", { title: "hello" }, {
      socket_id: alice.connection.socket_id,
      info: "subscription_count",
    });
    assert.deepEqual(await res.json(), { channels: { news: { subscription_count: 2 } } });
    await sdk.triggerBatch([
      { channel: "news", name: "one", data: { n: 1 } },
      { channel: "news", name: "two", data: "plain" },
    ]);
    await eventually(() => aliceSeen.length === 2 && bobSeen.length === 3);
    assert.deepEqual(bobSeen, [
      { event: "headline", data: { title: "hello" } },
      { event: "one", data: { n: 1 } },
      { event: "two", data: "plain" },
    ]);
    assert.deepEqual(aliceSeen.map((e) => e.event), ["one", "two"], "alice was excluded");
  });
});

Deno.test("a Python backend (stdlib only) signs and publishes to a pusher-js subscriber", async () => {
  await using ts = await startPusherServer();
  const client = await connectPusher(ts);
  await using([client], async () => {
    const channel = await subscribed(client, "private-orders");
    const received = nextEvent<{ id: number }>(channel, "order-placed");
    const out = await new Deno.Command("python3", {
      args: [
        `${TEST_DIR}_pusher_trigger.py`,
        `http://127.0.0.1:${ts.port}`,
        APP.id,
        APP.key,
        APP.secret,
        "private-orders",
        "order-placed",
        '{"id":17}',
      ],
      stdout: "piped",
    }).output();
    assert.equal(out.code, 0);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
      status: 200,
      body: "{}",
    });
    assert.deepEqual(await received, { id: 17 });
  });
});

Deno.test("channel queries answer what pusher-js clients did: occupancy, counts, presence users", async () => {
  await using ts = await startPusherServer();
  const sdk = serverSdk(ts.port);
  const get = async (path: string, params: Record<string, string> = {}) =>
    await (await sdk.get({ path, params })).json();
  const ann = await connectPusher(ts, { presence: { user_id: "ann", user_info: { n: 1 } } });
  const ben = await connectPusher(ts, { presence: { user_id: 7 } });
  const ben2 = await connectPusher(ts, { presence: { user_id: 7 } });
  await using([ann, ben, ben2], async () => {
    await subscribed(ann, "presence-room");
    await subscribed(ben, "presence-room");
    await subscribed(ben2, "presence-room");
    await subscribed(ann, "lobby");
    await eventually(async () =>
      (await get("/channels/presence-room", { info: "user_count" })).user_count === 2
    );
    assert.deepEqual(
      await get("/channels/presence-room", { info: "user_count,subscription_count" }),
      { occupied: true, user_count: 2, subscription_count: 3 },
    );
    assert.deepEqual(await get("/channels"), { channels: { "presence-room": {}, lobby: {} } });
    assert.deepEqual(
      await get("/channels", { filter_by_prefix: "presence-", info: "user_count" }),
      { channels: { "presence-room": { user_count: 2 } } },
    );
    const users = (await get("/channels/presence-room/users")) as { users: { id: string }[] };
    assert.deepEqual(users.users.map((u) => u.id).sort(), ["7", "ann"]);
    assert.deepEqual(await get("/channels/lobby", { info: "subscription_count" }), {
      occupied: true,
      subscription_count: 1,
    });
    await disconnect(ann);
    await eventually(async () => (await get("/channels/lobby")).occupied === false);
    assert.deepEqual(await get("/channels/empty"), { occupied: false });
  });
});

Deno.test("the SDK's sendToUser reaches the user's signed-in pusher-js connection", async () => {
  await using ts = await startPusherServer();
  const alice = await connectPusher(ts, { user: { id: "42" } });
  await using([alice], async () => {
    const got = new Promise((resolve) => alice.user.bind("note", resolve));
    alice.signin();
    const sdk = serverSdk(ts.port);
    // pusher-js subscribes to #server-to-user-42 once signed in.
    await eventually(async () =>
      (await (await sdk.get({ path: "/channels/#server-to-user-42".replace("#", "%23") })).json())
        .occupied === true
    );
    const res = await sdk.sendToUser("42", "note", { hi: "alice" });
    assert.equal(res.status, 200);
    assert.deepEqual(await got, { hi: "alice" });
  });
});

Deno.test("terminate_connections closes every connection signed in as the user", async () => {
  await using ts = await startPusherServer();
  const sdk = serverSdk(ts.port);
  await using kept = rawPusher(ts);
  await using gone = rawPusher(ts);
  for (const [raw, id] of [[kept, "keep-me"], [gone, "user-9"]] as const) {
    const socketId = await rawSocketId(raw);
    raw.send({ event: "pusher:signin", data: sdk.authenticateUser(socketId, { id }) });
    await raw.next("pusher:signin_success");
  }
  const res = await sdk.terminateUserConnections("user-9");
  assert.equal(res.status, 200);
  const closed = await gone.closed;
  assert.ok(closed.code >= 4000, `closed with ${closed.code}`);
  assert.equal(kept.ws.readyState, WebSocket.OPEN, "another user's connection stays");
});

Deno.test("hostile API requests deliver nothing; the next good one arrives first", async () => {
  await using ts = await startPusherServer();
  const client = await connectPusher(ts);
  await using([client], async () => {
    const seen = recordChannel(await subscribed(client, "c0"));
    const url = `http://127.0.0.1:${ts.port}`;
    const app = { ...APP };
    const event = (extra: Record<string, unknown> = {}) =>
      JSON.stringify({ name: "bad", data: "d", channel: "c0", ...extra });
    const channels = Array.from({ length: 101 }, (_, i) => `c${i}`);
    const refused: [string, Parameters<typeof signedRequest>[3], string, number][] = [
      ["wrong signature", { signature: "f".repeat(64), body: event() }, "/events", 401],
      ["stale timestamp", { skewSec: -601, body: event() }, "/events", 401],
      ["bad body_md5", { bodyMd5: "0".repeat(32), body: event() }, "/events", 401],
      ["wrong version", { authVersion: "1.1", body: event() }, "/events", 401],
      ["oversized data", { body: event({ data: "x".repeat(10_241) }) }, "/events", 413],
      ["deep data", { body: event({ data: "[".repeat(65) + "]".repeat(65) }) }, "/events", 400],
      [
        "101 channels",
        {
          body: JSON.stringify({ name: "bad", data: "d", channels }),
        },
        "/events",
        400,
      ],
      [
        "11 batch events",
        {
          body: JSON.stringify({
            batch: channels.slice(0, 11).map((channel) => ({ channel, name: "bad", data: "d" })),
          }),
        },
        "/batch_events",
        400,
      ],
      ["long name", { body: event({ name: "n".repeat(201) }) }, "/events", 400],
      ["long channel", { body: event({ channel: "c".repeat(165) }) }, "/events", 400],
    ];
    for (const [what, options, path, status] of refused) {
      const res = await signedRequest(url, "POST", path, { app, ...options });
      assert.equal(res.status, status, `${what}: ${res.body}`);
    }
    const good = await signedRequest(url, "POST", "/events", {
      app,
      body: JSON.stringify({ name: "good", data: "ok", channel: "c0" }),
    });
    assert.equal(good.status, 200);
    await eventually(() => seen.length > 0);
    assert.deepEqual(seen, [{ event: "good", data: "ok" }]);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /realtime_pusher_api_requests_total\{endpoint="events",status="401"\} 4/);
    assert.match(metrics, /realtime_pusher_api_requests_total\{endpoint="events",status="200"\} 1/);
    assert.equal(ts.audit.of("auth_failure").filter((r) => r.protocol === "pusher").length, 4);
  });
});

Deno.test("without any Pusher app every /apps/… path is 404", async () => {
  await using ts = await startServer();
  for (const path of ["/events", "/batch_events"]) {
    const res = await signedRequest(ts.httpUrl, "POST", path, { app: APP, body: "{}" });
    assert.equal(res.status, 404, path);
  }
  for (const path of ["/channels", "/channels/x", "/channels/presence-x/users"]) {
    assert.equal((await signedRequest(ts.httpUrl, "GET", path, { app: APP })).status, 404, path);
  }
});

Deno.test("an unknown app id is 404; while draining, triggers are 503 and reads still answer", async () => {
  await using ts = await startPusherServer();
  const other = { ...APP, id: "no-such-app" };
  const body = JSON.stringify({ name: "e", data: "d", channel: "c" });
  const unknown = await signedRequest(ts.httpUrl, "POST", "/events", { app: other, body });
  assert.equal(unknown.status, 404);
  const draining = ts.server.shutdown({ graceMs: 200 });
  const refused = await signedRequest(ts.httpUrl, "POST", "/events", { app: APP, body });
  assert.equal(refused.status, 503);
  const read = await signedRequest(ts.httpUrl, "GET", "/channels", { app: APP });
  assert.equal(read.status, 200);
  await draining;
});
