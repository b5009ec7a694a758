/**
 * The Pusher HTTP API, called by the real `pusher` Node SDK, a Python
 * backend (stdlib only) and hand-signed hostile requests, against the API's
 * routes behind the real router on a real port. The channels record what
 * the API asked of them, so every refusal can assert that nothing was sent.
 *
 * @module
 */
import assert from "node:assert/strict";
import { FakeClock } from "./_helpers.ts";
import { APP, signedRequest, startPusherApi } from "./_pusher_api.ts";

const TEST_DIR = new URL(".", import.meta.url).pathname;

Deno.test("the SDK's trigger reaches the channels: name, data, channels, socket_id; info answers counts", async () => {
  await using api = startPusherApi();
  const pusher = api.sdk();
  const plain = await pusher.trigger("my-channel", "my-event", { message: "hello" });
  assert.equal(plain.status, 200);
  assert.deepEqual(await plain.json(), {});
  api.channels.states.set("presence-room", { occupied: true, subscriptionCount: 3, userCount: 2 });
  api.channels.states.set("public", { occupied: true, subscriptionCount: 5 });
  const counted = await pusher.trigger(["presence-room", "public"], "ev", "raw text", {
    socket_id: "123.456",
    info: "subscription_count,user_count",
  });
  assert.equal(counted.status, 200);
  assert.deepEqual(await counted.json(), {
    channels: {
      "presence-room": { subscription_count: 3, user_count: 2 },
      "public": { subscription_count: 5 },
    },
  });
  assert.deepEqual(api.channels.triggered, [
    {
      app: APP.id,
      event: { name: "my-event", data: '{"message":"hello"}', channels: ["my-channel"] },
    },
    {
      app: APP.id,
      event: {
        name: "ev",
        data: "raw text",
        channels: ["presence-room", "public"],
        socketId: "123.456",
      },
    },
  ]);
  assert.equal(api.counters.pusherApi.get("events 200"), 2);
});

Deno.test("the SDK's triggerBatch sends every event in order and answers per-event info", async () => {
  await using api = startPusherApi();
  api.channels.states.set("presence-a", { occupied: true, subscriptionCount: 2, userCount: 1 });
  const res = await api.sdk().triggerBatch([
    { channel: "presence-a", name: "one", data: { n: 1 }, info: "user_count,subscription_count" },
    { channel: "b", name: "two", data: "2", socket_id: "1.2" },
  ]);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {
    batch: [{ subscription_count: 2, user_count: 1 }, {}],
  });
  assert.deepEqual(api.channels.triggered.map((t) => t.event), [
    { name: "one", data: '{"n":1}', channels: ["presence-a"] },
    { name: "two", data: "2", channels: ["b"], socketId: "1.2" },
  ]);
});

Deno.test("the SDK's channel queries: list by prefix, one channel, presence users", async () => {
  await using api = startPusherApi();
  const { states, members } = api.channels;
  states.set("presence-chat", { occupied: true, subscriptionCount: 3, userCount: 2 });
  states.set("presence-lobby", { occupied: true, subscriptionCount: 1, userCount: 1 });
  states.set("news", { occupied: true, subscriptionCount: 7 });
  members.set("presence-chat", ["1", "alice"]);
  const pusher = api.sdk();
  const get = async (path: string, params: Record<string, string> = {}) => {
    const res = await pusher.get({ path, params });
    return await res.json();
  };
  assert.deepEqual(await get("/channels"), {
    channels: { "presence-chat": {}, "presence-lobby": {}, news: {} },
  });
  assert.deepEqual(await get("/channels", { filter_by_prefix: "presence-", info: "user_count" }), {
    channels: { "presence-chat": { user_count: 2 }, "presence-lobby": { user_count: 1 } },
  });
  assert.deepEqual(
    await get("/channels/presence-chat", { info: "user_count,subscription_count" }),
    { occupied: true, user_count: 2, subscription_count: 3 },
  );
  assert.deepEqual(await get("/channels/news"), { occupied: true });
  assert.deepEqual(await get("/channels/empty", { info: "subscription_count" }), {
    occupied: false,
    subscription_count: 0,
  });
  assert.deepEqual(await get("/channels/presence-chat/users"), {
    users: [{ id: "1" }, { id: "alice" }],
  });
  // Pusher's 400s: user counts only for presence channels.
  for (
    const [path, params] of [
      ["/channels", { info: "user_count" }],
      ["/channels", { filter_by_prefix: "priv", info: "user_count" }],
      ["/channels/news", { info: "user_count" }],
      ["/channels/news/users", {}],
    ] as const
  ) {
    await assert.rejects(pusher.get({ path, params }), (err: { status?: number }) => {
      assert.equal(err.status, 400, path);
      return true;
    });
  }
});

Deno.test("the SDK's terminateUserConnections reaches the channels", async () => {
  await using api = startPusherApi();
  const res = await api.sdk().terminateUserConnections("user-7");
  assert.equal(res.status, 200);
  assert.deepEqual(api.channels.terminated, [{ app: APP.id, user: "user-7" }]);
  assert.equal(api.audit.of("revoke")[0]?.user, "user-7");
});

Deno.test("a Python backend (stdlib hmac, hashlib, urllib) signs and triggers", async () => {
  await using api = startPusherApi();
  const run = async (secret: string) => {
    const out = await new Deno.Command("python3", {
      args: [
        `${TEST_DIR}_pusher_trigger.py`,
        api.url,
        APP.id,
        APP.key,
        secret,
        "orders",
        "order-placed",
        '{"id":17}',
        "99.100",
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assert.equal(out.code, 0);
    return JSON.parse(new TextDecoder().decode(out.stdout)) as { status: number; body: string };
  };
  assert.deepEqual(await run(APP.secret), { status: 200, body: "{}" });
  assert.deepEqual(api.channels.triggered.map((t) => t.event), [
    { name: "order-placed", data: '{"id":17}', channels: ["orders"], socketId: "99.100" },
  ]);
  const wrong = await run("not-the-secret-0123456789");
  assert.equal(wrong.status, 401);
  assert.match(wrong.body, /Invalid signature/);
  assert.equal(api.channels.triggered.length, 1, "the wrongly signed event is not sent");
});

const EVENT = JSON.stringify({ name: "e", data: "d", channels: ["c"] });

Deno.test("each bad part of the signature is a 401 naming it; nothing is sent; the audit never holds the secret", async () => {
  await using api = startPusherApi();
  const cases: [string, Parameters<typeof signedRequest>[3], RegExp, string][] = [
    ["wrong key", { app: { ...APP, key: "other-key" } }, /auth_key/, "auth_key"],
    ["wrong version", { authVersion: "2.0" }, /auth_version/, "auth_version"],
    ["stale timestamp", { skewSec: -601 }, /Timestamp expired/, "auth_timestamp"],
    ["future timestamp", { skewSec: 601 }, /Timestamp expired/, "auth_timestamp"],
    ["no body_md5", { bodyMd5: null }, /body_md5/, "body_md5"],
    ["body_md5 of another body", { sendBody: EVENT.replace('"d"', '"x"') }, /body_md5/, "body_md5"],
    ["wrong signature", { signature: "0".repeat(64) }, /Invalid signature/, "auth_signature"],
    [
      "wrong secret",
      { app: { ...APP, secret: "x".repeat(28) } },
      /Invalid signature/,
      "auth_signature",
    ],
  ];
  for (const [what, options, message, reason] of cases) {
    const res = await signedRequest(api.url, "POST", "/events", { body: EVENT, ...options });
    assert.equal(res.status, 401, what);
    assert.match(res.body, message, what);
    assert.ok(!res.body.includes(APP.secret), what);
    assert.equal(api.audit.of("auth_failure").at(-1)?.reason, reason, what);
  }
  assert.equal(api.channels.triggered.length, 0);
  const audit = JSON.stringify(api.audit.records);
  assert.ok(!audit.includes(APP.secret) && !audit.includes("0".repeat(64)));
  assert.equal(api.counters.pusherApi.get("events 401"), cases.length);
  // Within the window (599 s either way) the same request is accepted.
  for (const skewSec of [-599, 599]) {
    const res = await signedRequest(api.url, "POST", "/events", { body: EVENT, skewSec });
    assert.equal(res.status, 200, `skew ${skewSec}`);
  }
});

Deno.test("the timestamp is checked against the server's injected clock", async () => {
  const clock = new FakeClock(Date.now() + 601_000);
  await using api = startPusherApi({ clock });
  await assert.rejects(
    api.sdk().trigger("c", "e", "d"),
    (err: { status?: number; body?: string }) => {
      assert.equal(err.status, 401);
      assert.match(err.body ?? "", /Timestamp expired/);
      return true;
    },
  );
  clock.advance(-2_000);
  assert.equal((await api.sdk().trigger("c", "e", "d")).status, 200);
});

Deno.test("an unknown app id is 404; an unknown path or method gets the router's answer", async () => {
  await using api = startPusherApi();
  const other = { ...APP, id: "999" };
  assert.equal(
    (await signedRequest(api.url, "POST", "/events", { app: other, body: EVENT })).status,
    404,
  );
  assert.equal((await signedRequest(api.url, "GET", "/nope")).status, 404);
  assert.equal((await signedRequest(api.url, "GET", "/events")).status, 405);
  assert.equal(api.channels.triggered.length, 0);
});

Deno.test("Pusher's limits: 101 channels, 11 batch events, a long name, large or deep data, bad names — refused, nothing sent", async () => {
  await using api = startPusherApi();
  const post = (path: string, body: unknown) =>
    signedRequest(api.url, "POST", path, { body: JSON.stringify(body) });
  const channels = (n: number) => Array.from({ length: n }, (_, i) => `c${i}`);
  const cases: [string, string, unknown, number, RegExp][] = [
    [
      "101 channels",
      "/events",
      { name: "e", data: "d", channels: channels(101) },
      400,
      /101 channels, at most 100/,
    ],
    [
      "11 batch events",
      "/batch_events",
      { batch: channels(11).map((channel) => ({ channel, name: "e", data: "d" })) },
      400,
      /11 events, at most 10/,
    ],
    [
      "a 201-character name",
      "/events",
      { name: "n".repeat(201), data: "d", channel: "c" },
      400,
      /Event name too long/,
    ],
    [
      "10 KiB + 1 of data",
      "/events",
      { name: "e", data: "x".repeat(10 * 1024 + 1), channel: "c" },
      413,
      /Payload too large/,
    ],
    [
      "deeply nested data",
      "/events",
      { name: "e", data: "[".repeat(100) + "]".repeat(100), channel: "c" },
      400,
      /deeper than 64/,
    ],
    [
      "data that is not a string",
      "/events",
      { name: "e", data: { a: 1 }, channel: "c" },
      400,
      /data/,
    ],
    [
      "a nested body",
      "/events",
      { name: "e", data: "d", channel: "c", x: [[[1]]] },
      400,
      /nests deeper/,
    ],
    [
      "an invalid channel name",
      "/events",
      { name: "e", data: "d", channel: "bad channel!" },
      400,
      /Invalid channel name/,
    ],
    [
      "a 165-character channel",
      "/events",
      { name: "e", data: "d", channel: "c".repeat(165) },
      400,
      /Invalid channel name/,
    ],
    ["no channel", "/events", { name: "e", data: "d" }, 400, /channels/],
    [
      "a bad socket id",
      "/events",
      { name: "e", data: "d", channel: "c", socket_id: "x" },
      400,
      /socket_id/,
    ],
    [
      "a reserved name",
      "/events",
      { name: "pusher_internal:member_added", data: "d", channel: "c" },
      400,
      /reserved/,
    ],
    [
      "a bad event in a batch",
      "/batch_events",
      {
        batch: [{ channel: "ok", name: "e", data: "d" }, {
          channel: "ok",
          name: "e",
          data: "x".repeat(20_000),
        }],
      },
      413,
      /batch\[1\]/,
    ],
    [
      "a __proto__ key",
      "/events",
      JSON.parse('{"name":"e","data":"d","channel":"c","__proto__":{"x":1}}'),
      400,
      /__proto__/,
    ],
  ];
  for (const [what, path, body, status, message] of cases) {
    const res = await post(path, body);
    assert.equal(res.status, status, `${what}: ${res.body}`);
    assert.match(res.body, message, what);
  }
  const json = await signedRequest(api.url, "POST", "/events", { body: "{not json" });
  assert.equal(json.status, 400);
  assert.equal(api.channels.triggered.length, 0, "nothing refused was sent");
  // The limits themselves pass: 100 channels, 10 batch events, 200 characters, 10 KiB.
  assert.equal(
    (await post("/events", {
      name: "n".repeat(200),
      data: "x".repeat(10240),
      channels: channels(100),
    })).status,
    200,
  );
  assert.equal(
    (await post("/batch_events", {
      batch: channels(10).map((channel) => ({ channel, name: "e", data: "d" })),
    })).status,
    200,
  );
  assert.equal(api.channels.triggered.length, 11);
});

Deno.test("an app's own limits apply (maxEventChannelsAtOnce, maxEventBatchSize, maxEventPayloadKb)", async () => {
  await using api = startPusherApi({
    apps: [{
      ...APP,
      maxEventChannelsAtOnce: 2,
      maxEventBatchSize: 1,
      maxEventPayloadKb: 1,
      maxEventNameLength: 5,
    }],
  });
  const post = (path: string, body: unknown) =>
    signedRequest(api.url, "POST", path, { body: JSON.stringify(body) });
  assert.equal(
    (await post("/events", { name: "e", data: "d", channels: ["a", "b", "c"] })).status,
    400,
  );
  assert.equal(
    (await post("/batch_events", {
      batch: [{ channel: "a", name: "e", data: "d" }, { channel: "b", name: "e", data: "d" }],
    })).status,
    400,
  );
  assert.equal(
    (await post("/events", { name: "e", data: "x".repeat(1025), channel: "a" })).status,
    413,
  );
  assert.equal((await post("/events", { name: "sixsix", data: "d", channel: "a" })).status, 400);
  assert.equal(api.channels.triggered.length, 0);
});

Deno.test("a body over the app's bound is 413 before it is signed or parsed", async () => {
  await using api = startPusherApi();
  const huge = JSON.stringify({ name: "e", data: "x".repeat(2_000_000), channel: "c" });
  const res = await signedRequest(api.url, "POST", "/events", { body: huge });
  assert.equal(res.status, 413);
  assert.equal(api.channels.triggered.length, 0);
});
