/**
 * The Pusher front door (`/app/{key}`) with real clients: `pusher-js` 8
 * (Node build) signing with the `pusher` server SDK, against a real server;
 * raw sockets where close codes and exact frames matter.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { TestServer } from "./_helpers.ts";
import { eventually } from "./_helpers.ts";
import { hmacHex } from "../lib/protocols/pusher/signature.ts";
import {
  APP,
  connectPusher,
  disconnect,
  nextEvent,
  type Pusher,
  rawPusher,
  rawSocketId,
  serverSdk,
  startPusherServer,
  subscribed,
} from "./_pusher.ts";

/** Triggers through the server's Pusher channels, as the HTTP API does. */
async function trigger(
  ts: TestServer,
  channels: string[],
  name: string,
  data: unknown,
  socketId?: string,
): Promise<void> {
  const pusher = ts.server.pusher!;
  const app = pusher.apps.byId(APP.id)!;
  await pusher.channels.trigger(app, {
    name,
    data: typeof data === "string" ? data : JSON.stringify(data),
    channels,
    ...(socketId === undefined ? {} : { socketId }),
  });
}

async function using<T>(clients: Pusher[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } finally {
    await Promise.all(clients.map(disconnect));
  }
}

Deno.test("pusher-js connects and gets a Pusher socket id", async () => {
  await using ts = await startPusherServer();
  const client = await connectPusher(ts);
  await using([client], () => {
    assert.match(client.connection.socket_id, /^\d+\.\d+$/);
    return Promise.resolve();
  });
});

Deno.test("public channel: subscribers get triggered events, except the excluded socket", async () => {
  await using ts = await startPusherServer();
  const a = await connectPusher(ts);
  const b = await connectPusher(ts);
  await using([a, b], async () => {
    const chA = await subscribed(a, "news");
    const chB = await subscribed(b, "news");
    const gotA = nextEvent(chA, "headline");
    const gotB = nextEvent(chB, "headline");
    await trigger(ts, ["news"], "headline", { text: "hi" });
    assert.deepEqual(await gotA, { text: "hi" });
    assert.deepEqual(await gotB, { text: "hi" });
    const seenByA: unknown[] = [];
    chA.bind("second", (data: unknown) => seenByA.push(data));
    const gotB2 = nextEvent(chB, "second");
    await trigger(ts, ["news"], "second", "plain text", a.connection.socket_id);
    assert.equal(await gotB2, "plain text");
    // Delivered in order: anything to A would have arrived before a later event.
    const gotA3 = nextEvent(chA, "third");
    await trigger(ts, ["news"], "third", "3");
    assert.equal(await gotA3, 3);
    assert.deepEqual(seenByA, []);
  });
});

Deno.test("private channel: a good signature subscribes, a bad one gets AuthError 401", async () => {
  await using ts = await startPusherServer();
  const good = await connectPusher(ts);
  const bad = await connectPusher(ts, { secret: "not-the-secret-of-the-app" });
  await using([good, bad], async () => {
    const ch = await subscribed(good, "private-room");
    const badCh = bad.subscribe("private-room");
    const error = await nextEvent<{ type: string; status: number }>(
      badCh,
      "pusher:subscription_error",
    );
    assert.equal(error.type, "AuthError");
    assert.equal(error.status, 401);
    const got = nextEvent(ch, "secret");
    await trigger(ts, ["private-room"], "secret", "s");
    assert.equal(await got, "s");
  });
});

Deno.test("private channel: no signature at all is refused on a raw socket, and nothing is delivered", async () => {
  await using ts = await startPusherServer();
  await using raw = rawPusher(ts);
  await rawSocketId(raw);
  raw.send({ event: "pusher:subscribe", data: { channel: "private-x" } });
  const error = await raw.next("pusher:subscription_error");
  assert.equal(error.channel, "private-x");
  assert.deepEqual((error.data as { type: string }).type, "AuthError");
  await trigger(ts, ["private-x"], "leak", "x");
  raw.send({ event: "pusher:ping", data: {} });
  await raw.next("pusher:pong");
  assert.equal(raw.frames.some((f) => f.event === "leak"), false);
});

Deno.test("presence: here, joining once per user (two connections of one user), leaving", async () => {
  await using ts = await startPusherServer({ PRESENCE_DIFF_MS: "20" });
  const alice1 = await connectPusher(ts, {
    presence: { user_id: 1, user_info: { name: "Alice" } },
  });
  const alice2 = await connectPusher(ts, {
    presence: { user_id: 1, user_info: { name: "Alice" } },
  });
  const bob = await connectPusher(ts, { presence: { user_id: "bob", user_info: { name: "Bob" } } });
  await using([alice1, alice2, bob], async () => {
    const chBob = bob.subscribe("presence-lobby");
    const here = await nextEvent<{ count: number; each(fn: (m: { id: string }) => void): void }>(
      chBob,
      "pusher:subscription_succeeded",
    );
    assert.equal(here.count, 1);
    const added: { id: string; info: unknown }[] = [];
    chBob.bind("pusher:member_added", (m: { id: string; info: unknown }) => added.push(m));
    const removed: string[] = [];
    chBob.bind("pusher:member_removed", (m: { id: string }) => removed.push(m.id));
    const chA1 = alice1.subscribe("presence-lobby");
    const members = await nextEvent<{ count: number; get(id: string): { info: unknown } }>(
      chA1,
      "pusher:subscription_succeeded",
    );
    assert.equal(members.count, 2);
    assert.deepEqual(members.get("bob")?.info, { name: "Bob" });
    await eventually(() => added.length === 1);
    await subscribed(alice2, "presence-lobby");
    // Alice's second connection adds no member.
    await trigger(ts, ["presence-lobby"], "sync", "1");
    await nextEvent(chBob, "sync");
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(added, [{ id: "1", info: { name: "Alice" } }]);
    await disconnect(alice1);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(removed, []);
    await disconnect(alice2);
    await eventually(() => removed.length === 1);
    assert.deepEqual(removed, ["1"]);
  });
});

Deno.test("presence: channel_data without user_id is refused, and a member over the size limit too", async () => {
  await using ts = await startPusherServer();
  await using raw = rawPusher(ts);
  const socketId = await rawSocketId(raw);
  const sdk = serverSdk(ts.port);
  const channelData = JSON.stringify({ user_info: { name: "x" } });
  const { auth } = sdk.authorizeChannel(socketId, "presence-a");
  const presenceAuth = `${APP.key}:${await hmacHex(
    APP.secret,
    `${socketId}:presence-a:${channelData}`,
  )}`;
  assert.notEqual(auth, presenceAuth);
  raw.send({
    event: "pusher:subscribe",
    data: { channel: "presence-a", auth: presenceAuth, channel_data: channelData },
  });
  const error = await raw.next("pusher:subscription_error");
  assert.match(String((error.data as { error: string }).error), /user_id/);
  const big = sdk.authorizeChannel(socketId, "presence-b", {
    user_id: "u",
    user_info: { blob: "x".repeat(3000) },
  });
  raw.send({ event: "pusher:subscribe", data: { channel: "presence-b", ...big } });
  await eventually(() =>
    raw.frames.filter((f) => f.event === "pusher:subscription_error").length === 2
  );
  const second = raw.frames.filter((f) => f.event === "pusher:subscription_error")[1]!;
  assert.equal((second.data as { type: string }).type, "LimitReached");
});

Deno.test("encrypted channel: the payload is relayed untouched; client events are refused", async () => {
  await using ts = await startPusherServer();
  await using raw = rawPusher(ts);
  const socketId = await rawSocketId(raw);
  raw.send({
    event: "pusher:subscribe",
    data: {
      channel: "private-encrypted-vault",
      // The SDK signs encrypted channels only with a master key the server never needs.
      auth: `${APP.key}:${await hmacHex(APP.secret, `${socketId}:private-encrypted-vault`)}`,
    },
  });
  await raw.next("pusher_internal:subscription_succeeded");
  const sealed = JSON.stringify({ nonce: "bm9uY2U=", ciphertext: "Y2lwaGVy" });
  await trigger(ts, ["private-encrypted-vault"], "secret", sealed);
  const got = await raw.next("secret");
  assert.equal(got.data, sealed);
  raw.send({ event: "client-x", channel: "private-encrypted-vault", data: {} });
  const error = await raw.next("pusher:error");
  assert.equal((error.data as { code: number }).code, 4301);
});

Deno.test("cache channel: the last event is sent on subscribe, else pusher:cache_miss", async () => {
  await using ts = await startPusherServer();
  const a = await connectPusher(ts);
  await using([a], async () => {
    const empty = a.subscribe("cache-empty");
    await nextEvent(empty, "pusher:cache_miss");
    await trigger(ts, ["cache-scores"], "score", { n: 1 });
    await trigger(ts, ["cache-scores"], "score", { n: 2 });
    const ch = a.subscribe("cache-scores");
    assert.deepEqual(await nextEvent(ch, "score"), { n: 2 });
    const b = await connectPusher(ts, { presence: { user_id: "u" } });
    await using([b], async () => {
      await trigger(ts, ["presence-cache-room"], "state", "s1");
      const pc = b.subscribe("presence-cache-room");
      assert.equal(await nextEvent(pc, "state"), "s1");
    });
  });
});

Deno.test("client events: refused unless the app enables them", async () => {
  await using ts = await startPusherServer();
  const a = await connectPusher(ts);
  await using([a], async () => {
    const ch = await subscribed(a, "private-chat");
    const refused = nextEvent<{ data: { code: number; message: string } }>(a.connection, "error");
    ch.trigger("client-typing", { on: true });
    const error = await refused;
    assert.equal(error.data.code, 4301);
    assert.match(error.data.message, /not have client messaging enabled/);
  });
});

Deno.test("client events: relayed to others, never echoed, user_id on presence, refused on public", async () => {
  await using ts = await startPusherServer({}, { enableClientMessages: true });
  const a = await connectPusher(ts, { presence: { user_id: "ann" } });
  const b = await connectPusher(ts, { presence: { user_id: "ben" } });
  await using([a, b], async () => {
    const chA = await subscribed(a, "private-chat");
    const chB = await subscribed(b, "private-chat");
    const echoed: unknown[] = [];
    chA.bind("client-typing", (data: unknown) => echoed.push(data));
    const got = nextEvent(chB, "client-typing");
    chA.trigger("client-typing", { on: true });
    assert.deepEqual(await got, { on: true });
    const pA = await subscribed(a, "presence-room");
    const pB = await subscribed(b, "presence-room");
    const withUser = new Promise<string | undefined>((resolve) =>
      pB.bind("client-wave", (_: unknown, meta: { user_id?: string }) => resolve(meta?.user_id))
    );
    pA.trigger("client-wave", {});
    assert.equal(await withUser, "ann");
    // B answers on the private channel: A receives it, and had seen nothing of its own.
    const back = nextEvent(chA, "client-typing");
    chB.trigger("client-typing", { on: false });
    assert.deepEqual(await back, { on: false });
    assert.deepEqual(echoed, [{ on: false }]);
    const pub = await subscribed(a, "lobby");
    const refused = nextEvent<{ data: { code: number } }>(a.connection, "error");
    pub.trigger("client-x", {});
    assert.equal((await refused).data.code, 4301);
  });
});

Deno.test("client events: over maxClientEventsPerSecond they get 4301 and are dropped", async () => {
  await using ts = await startPusherServer({}, {
    enableClientMessages: true,
    maxClientEventsPerSecond: 2,
  });
  const a = await connectPusher(ts);
  const b = await connectPusher(ts);
  await using([a, b], async () => {
    const chA = await subscribed(a, "private-burst");
    const chB = await subscribed(b, "private-burst");
    const received: unknown[] = [];
    chB.bind("client-n", (data: { n: number }) => received.push(data.n));
    const errors: number[] = [];
    a.connection.bind("error", (e: { data: { code: number } }) => errors.push(e.data.code));
    for (let n = 0; n < 5; n++) chA.trigger("client-n", { n });
    await eventually(() => errors.length === 3);
    assert.deepEqual(errors, [4301, 4301, 4301]);
    const sync = nextEvent(chB, "sync");
    await trigger(ts, ["private-burst"], "sync", "1");
    await sync;
    assert.deepEqual(received, [0, 1]);
  });
});

Deno.test("signin: the user's #server-to-user channel gets sendToUser events; others may not subscribe", async () => {
  await using ts = await startPusherServer();
  const alice = await connectPusher(ts, { user: { id: "42" } });
  await using([alice], async () => {
    const got = new Promise((resolve) => alice.user.bind("note", resolve));
    alice.signin();
    await eventually(() =>
      [...ts.server.pusher!.stats.get(APP.id)!.open].some((c) => c.signedIn === "42")
    );
    // pusher-js subscribes to #server-to-user-42 once signed in.
    await eventually(async () => {
      const state = await ts.server.pusher!.channels.channel(
        ts.server.pusher!.apps.byId(APP.id)!,
        "#server-to-user-42",
      );
      return state.occupied;
    });
    await trigger(ts, ["#server-to-user-42"], "note", { hi: "alice" });
    assert.deepEqual(await got, { hi: "alice" });
  });
  await using raw = rawPusher(ts);
  await rawSocketId(raw);
  raw.send({ event: "pusher:subscribe", data: { channel: "#server-to-user-42" } });
  const error = await raw.next("pusher:subscription_error");
  assert.equal((error.data as { status: number }).status, 403);
});

Deno.test("the observer hears relayed client events and cache misses (for Pusher's webhooks)", async () => {
  const heard: unknown[] = [];
  await using ts = await startPusherServer({}, { enableClientMessages: true }, {
    pusherObserver: {
      clientEvent: (app, report) => heard.push(["client_event", app.id, report]),
      cacheMiss: (app, channel) => heard.push(["cache_miss", app.id, channel]),
    },
  });
  const a = await connectPusher(ts, { presence: { user_id: 7 } });
  const b = await connectPusher(ts, { presence: { user_id: 8 } });
  await using([a, b], async () => {
    await nextEvent(a.subscribe("cache-quiet"), "pusher:cache_miss");
    const chA = await subscribed(a, "presence-obs");
    const chB = await subscribed(b, "presence-obs");
    const got = nextEvent(chB, "client-hi");
    chA.trigger("client-hi", { x: 1 });
    await got;
    await eventually(() => heard.length === 2);
    assert.deepEqual(heard, [
      ["cache_miss", APP.id, "cache-quiet"],
      ["client_event", APP.id, {
        channel: "presence-obs",
        event: "client-hi",
        dataJson: '{"x":1}',
        socketId: a.connection.socket_id,
        userId: "7",
      }],
    ]);
  });
});

Deno.test("admin page: a section per Pusher app with this isolate's connections, channels and frames", async () => {
  const apiKey = "pusher-admin-api-key-0123456789abcdef";
  await using ts = await startPusherServer({ API_KEY: apiKey });
  const a = await connectPusher(ts);
  await using([a], async () => {
    await subscribed(a, "news");
    await subscribed(a, "sports");
    const res = await fetch(`${ts.httpUrl}/api/admin/stats`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    assert.equal(res.status, 200);
    const { sections } = await res.json();
    const app = sections[`pusher app ${APP.id}`];
    assert.equal(app.connections, 1);
    assert.equal(app.channels, 2);
    assert.equal(app.enabled, true);
    assert.ok(app.messagesIn >= 2, "two subscribe frames at least");
    assert.ok(app.messagesOut >= 3, "connection_established and two subscription_succeeded");
  });
});
