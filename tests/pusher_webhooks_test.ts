/**
 * Pusher's webhooks end to end: `pusher-js` clients on a real server, a real
 * receiver (`Deno.serve`) whose every request is checked by the `pusher`
 * SDK's webhook helper (`isValid()`, `getEvents()`). `channel_occupied` /
 * `channel_vacated`, `member_added` / `member_removed` once per user,
 * `client_event`, `cache_miss`, each webhook's `events` filter, native and
 * Pusher events kept apart, a receiver failing twice, and two Redis nodes
 * producing one `channel_vacated` per channel.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connectAs, eventually, join, SECRET as JWT_SECRET, sleep } from "./_helpers.ts";
import { startAll } from "./_process.ts";
import {
  APP,
  connectPusher,
  disconnect,
  nextEvent,
  type Pusher,
  serverSdk,
  startPusherServer,
  subscribed,
} from "./_pusher.ts";
import { redisTest, startRedisNode } from "./_redis.ts";
import { type Receiver, startReceiver } from "./_webhook_receiver.ts";

const NATIVE_SECRET = "native-webhook-secret-long-enough-0123";

/** The SDK's verdict on every request, and the events of the accepted ones, via `getEvents()`. */
function verified(receiver: Receiver): { valid: boolean[]; events: Record<string, unknown>[] } {
  // The host is not used: only the webhook helper is.
  const sdk = serverSdk(1);
  const valid: boolean[] = [];
  const events: Record<string, unknown>[] = [];
  for (const request of receiver.requests) {
    const hook = sdk.webhook({
      headers: Object.fromEntries(request.headers),
      rawBody: request.body,
    });
    valid.push(hook.isValid());
    if (request.status === 200 && hook.isValid()) {
      events.push(...(hook.getEvents() as unknown as Record<string, unknown>[]));
    }
  }
  return { valid, events };
}

/** Events as `name channel[/user]` lines, sorted. */
function lines(events: Record<string, unknown>[]): string[] {
  return events.map((e) =>
    `${e.name} ${e.channel}${e.user_id === undefined ? "" : `/${e.user_id}`}`
  )
    .sort();
}

function hooks(...receivers: { url: string; events?: string[] }[]): Record<string, unknown> {
  return { enableClientMessages: true, webhooks: receivers };
}

Deno.test("pusher webhooks: occupied/vacated, members once per user, signed as the SDK checks", async () => {
  await using receiver = startReceiver({ secret: APP.secret, scheme: "pusher" });
  await using native = startReceiver({ secret: NATIVE_SECRET });
  await using ts = await startPusherServer(
    { WEBHOOK_URL: native.url, WEBHOOK_SECRET: NATIVE_SECRET, PRESENCE: "1" },
    hooks({ url: receiver.url }),
  );
  const ann1 = await connectPusher(ts, { presence: { user_id: "ann" } });
  const ann2 = await connectPusher(ts, { presence: { user_id: "ann" } });
  const ben = await connectPusher(ts, { presence: { user_id: 7 } });
  const alice = await connectAs(ts, "alice");
  try {
    await subscribed(ann1, "presence-hall");
    await subscribed(ann2, "presence-hall");
    await subscribed(ben, "presence-hall");
    await subscribed(ann1, "news");
    await join(alice, "lobby");
    await eventually(() => verified(receiver).events.length >= 4, 5000, "the arrivals");
    ann1.unsubscribe("news");
    await disconnect(ann1);
    await eventually(() => verified(receiver).events.length >= 5, 5000, "news vacated");
    await sleep(1200);
    // ann is still there on her second connection: no member_removed yet.
    assert.deepEqual(lines(verified(receiver).events), [
      "channel_occupied news",
      "channel_occupied presence-hall",
      "channel_vacated news",
      "member_added presence-hall/7",
      "member_added presence-hall/ann",
    ]);
    await disconnect(ann2);
    await disconnect(ben);
    await eventually(() => verified(receiver).events.length >= 8, 5000, "the departures");
    await sleep(1200);
    const { valid, events } = verified(receiver);
    assert.ok(valid.length > 0 && valid.every((v) => v), "every request valid for the SDK");
    assert.deepEqual(lines(events), [
      "channel_occupied news",
      "channel_occupied presence-hall",
      "channel_vacated news",
      "channel_vacated presence-hall",
      "member_added presence-hall/7",
      "member_added presence-hall/ann",
      "member_removed presence-hall/7",
      "member_removed presence-hall/ann",
    ]);
    const request = receiver.requests[0]!;
    assert.equal(request.headers.get("x-pusher-key"), APP.key);
    assert.ok(typeof request.json.time_ms === "number");
    assert.equal(request.json.id, undefined, "Pusher's body has no id");
    for (const event of request.json.events) {
      assert.deepEqual(Object.keys(event).filter((k) => k === "app" || k === "id"), []);
    }
    // The native receiver hears the native room only; the Pusher one none of it.
    await eventually(() => native.accepted().length > 0, 3000, "the native event");
    assert.deepEqual(
      native.accepted().filter((e) => e.name === "room_occupied").map((e) => e.room),
      ["lobby"],
    );
    assert.ok(native.accepted().every((e) => !String(e.room ?? "").startsWith("~")));
    assert.ok(events.every((e) => e.channel !== "lobby"));
  } finally {
    await Promise.all([ann1, ann2, ben].map(disconnect));
    await alice.close();
  }
});

Deno.test("pusher webhooks: client_event and cache_miss, each webhook's events filter", async () => {
  await using all = startReceiver({ secret: APP.secret, scheme: "pusher" });
  await using misses = startReceiver({ secret: APP.secret, scheme: "pusher" });
  await using ts = await startPusherServer(
    {},
    hooks(
      { url: all.url, events: ["client_event", "cache_miss"] },
      { url: misses.url, events: ["cache_miss"] },
    ),
  );
  const ann = await connectPusher(ts, { presence: { user_id: "ann" } });
  const ben = await connectPusher(ts, { presence: { user_id: "ben" } });
  try {
    const chAnn = await subscribed(ann, "presence-room");
    const chBen = await subscribed(ben, "presence-room");
    const heard = nextEvent(chBen, "client-wave");
    chAnn.trigger("client-wave", { hello: "there" });
    assert.deepEqual(await heard, { hello: "there" });
    const privAnn = await subscribed(ann, "private-chat");
    await subscribed(ben, "private-chat");
    privAnn.trigger("client-text", "plain words");
    await subscribed(ann, "cache-prices");
    await eventually(() => verified(all).events.length >= 3, 5000, "three events");
    await eventually(() => verified(misses).events.length >= 1, 5000, "the miss");
    await sleep(1200);
    const events = verified(all).events;
    const socket = (c: Pusher) => c.connection.socket_id;
    assert.deepEqual(events.filter((e) => e.name === "client_event"), [
      {
        name: "client_event",
        channel: "presence-room",
        event: "client-wave",
        data: JSON.stringify({ hello: "there" }),
        socket_id: socket(ann),
        user_id: "ann",
      },
      {
        name: "client_event",
        channel: "private-chat",
        event: "client-text",
        data: "plain words",
        socket_id: socket(ann),
      },
    ]);
    assert.deepEqual(events.filter((e) => e.name === "cache_miss"), [
      { name: "cache_miss", channel: "cache-prices" },
    ]);
    assert.equal(events.length, 3, "no occupancy events: this webhook does not take them");
    assert.deepEqual(verified(misses).events, [{ name: "cache_miss", channel: "cache-prices" }]);
    assert.ok(verified(all).valid.every((v) => v) && verified(misses).valid.every((v) => v));
  } finally {
    await Promise.all([ann, ben].map(disconnect));
  }
});

Deno.test("pusher webhooks: a receiver answering 500 twice then 200 gets every event once", async () => {
  await using receiver = startReceiver({
    secret: APP.secret,
    scheme: "pusher",
    answer: (n) => n < 2 ? 500 : undefined,
  });
  await using ts = await startPusherServer({}, hooks({ url: receiver.url }));
  const client = await connectPusher(ts);
  try {
    await subscribed(client, "news");
    await subscribed(client, "sports");
    client.unsubscribe("news");
    await eventually(() => verified(receiver).events.length >= 3, 8000, "delivery after retries");
    await sleep(1500);
    const statuses = receiver.requests.map((r) => r.status);
    assert.deepEqual(statuses.slice(0, 3), [500, 500, 200]);
    assert.deepEqual(lines(verified(receiver).events), [
      "channel_occupied news",
      "channel_occupied sports",
      "channel_vacated news",
    ]);
    // The retries were spaced ~1 s then ~2 s apart (back-off with ±20% jitter).
    const times = receiver.requests.map((r) => r.json.time_ms);
    assert.ok(times[1]! - times[0]! >= 700, `first retry after ${times[1]! - times[0]!} ms`);
    assert.ok(times[2]! - times[1]! >= 1500, `second retry after ${times[2]! - times[1]!} ms`);
  } finally {
    await disconnect(client);
  }
});

redisTest(
  "pusher webhooks (redis): two nodes send one channel_vacated per channel",
  async (redis) => {
    await using receiver = startReceiver({ secret: APP.secret, scheme: "pusher" });
    const path = await Deno.makeTempFile({ suffix: ".json" });
    try {
      await Deno.writeTextFile(path, JSON.stringify([{ ...APP, ...hooks({ url: receiver.url }) }]));
      const env = {
        JWT_SECRET,
        PUSHER_APPS_FILE: path,
        STORE: "redis",
        PRESENCE_DIFF_MS: "20",
        HANDSHAKES_PER_MINUTE_PER_IP: "100000",
      };
      const channel = `pwh-${crypto.randomUUID()}`;
      await using nodes = await startAll([
        startRedisNode(redis.url, channel, { env }),
        startRedisNode(redis.url, channel, { env }),
      ]);
      const clients: Pusher[] = [];
      try {
        for (const node of nodes) {
          for (const user of ["ann", "ben"]) {
            const client = await connectPusher(node, { presence: { user_id: user } });
            clients.push(client);
            await subscribed(client, "presence-hall");
            await subscribed(client, "news");
          }
        }
        await eventually(() => verified(receiver).events.length >= 4, 5000, "the arrivals");
        await Promise.all(clients.map(disconnect));
        await eventually(() => verified(receiver).events.length >= 8, 5000, "the departures");
        await sleep(1500);
        assert.ok(verified(receiver).valid.every((v) => v));
        assert.deepEqual(lines(verified(receiver).events), [
          "channel_occupied news",
          "channel_occupied presence-hall",
          "channel_vacated news",
          "channel_vacated presence-hall",
          "member_added presence-hall/ann",
          "member_added presence-hall/ben",
          "member_removed presence-hall/ann",
          "member_removed presence-hall/ben",
        ]);
      } finally {
        await Promise.all(clients.map(disconnect));
      }
    } finally {
      await Deno.remove(path);
    }
  },
);
