/**
 * The Pusher front door's refusals, close codes and hostile input, on raw
 * sockets (the codes `pusher-js` hides) and with `pusher-js` where its
 * behaviour is the point: unknown key 4001, bad protocol version 4008/4007,
 * activity timeout 4201, shutdown 4200, signin and terminate 4009,
 * revocation, bad JSON and deep nesting, 404 without apps, per-app metrics.
 *
 * @module
 */
import assert from "node:assert/strict";
import { eventually, rawHandshake, startServer } from "./_helpers.ts";
import {
  APP,
  connectPusher,
  disconnect,
  nextEvent,
  rawPusher,
  rawSocketId,
  serverSdk,
  startPusherServer,
  subscribed,
} from "./_pusher.ts";

Deno.test("without any Pusher app, /app/{key} answers 404", async () => {
  await using ts = await startServer();
  const res = await fetch(`${ts.httpUrl}/app/key-1?protocol=7`);
  assert.equal(res.status, 404);
  await res.body?.cancel();
});

Deno.test("an unknown key gets pusher:error and close 4001; a missing protocol 4008; protocol 8 4007", async () => {
  await using ts = await startPusherServer();
  await using unknown = rawPusher(ts, "/app/nope?protocol=7");
  const error = await unknown.next("pusher:error");
  assert.equal((error.data as { code: number }).code, 4001);
  assert.equal((await unknown.closed).code, 4001);
  await using noVersion = rawPusher(ts, `/app/${APP.key}`);
  assert.equal((await noVersion.closed).code, 4008);
  await using future = rawPusher(ts, `/app/${APP.key}?protocol=8`);
  assert.equal((await future.closed).code, 4007);
  const extra = await fetch(`${ts.httpUrl}/app/${APP.key}/extra?protocol=7`);
  assert.equal(extra.status, 404);
  await extra.body?.cancel();
});

Deno.test("a disabled app gets 4003; an app over its maxConnections 4004", async () => {
  await using disabled = await startPusherServer({}, { enabled: false });
  await using off = rawPusher(disabled);
  assert.equal((await off.closed).code, 4003);
  await using ts = await startPusherServer({}, { maxConnections: 1 });
  await using first = rawPusher(ts);
  await rawSocketId(first);
  await using second = rawPusher(ts);
  assert.equal((await second.closed).code, 4004);
});

Deno.test("a client that answers no ping is closed 4201 after the activity timeout", async () => {
  await using ts = await startPusherServer({ HEARTBEAT_MS: "1000" });
  await using raw = rawPusher(ts);
  const established = await raw.next("pusher:connection_established");
  assert.equal(JSON.parse(String(established.data)).activity_timeout, 1);
  await raw.next("pusher:ping", 3000);
  assert.equal((await raw.closed).code, 4201);
});

Deno.test("a client that answers pings stays connected past the activity timeout", async () => {
  await using ts = await startPusherServer({ HEARTBEAT_MS: "1000" });
  await using raw = rawPusher(ts);
  await rawSocketId(raw);
  await raw.next("pusher:ping", 3000);
  raw.send({ event: "pusher:pong", data: {} });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(raw.ws.readyState, WebSocket.OPEN);
  raw.send({ event: "pusher:ping", data: {} });
  await raw.next("pusher:pong");
});

Deno.test("shutdown closes every Pusher client with 4200 (reconnect now)", async () => {
  await using ts = await startPusherServer();
  await using raw = rawPusher(ts);
  await rawSocketId(raw);
  await ts.server.shutdown({ graceMs: 500 });
  const { code } = await raw.closed;
  assert.equal(code, 4200);
});

Deno.test("hostile input: bad JSON, deep nesting, oversized frames are answered, nothing relayed", async () => {
  await using ts = await startPusherServer({ MAX_PAYLOAD_DEPTH: "8", MAX_MESSAGE_BYTES: "4096" }, {
    enableClientMessages: true,
  });
  await using raw = rawPusher(ts);
  const socketId = await rawSocketId(raw);
  const sdk = serverSdk(ts.port);
  raw.send({
    event: "pusher:subscribe",
    data: { channel: "private-h", ...sdk.authorizeChannel(socketId, "private-h") },
  });
  await raw.next("pusher_internal:subscription_succeeded");
  raw.send("{not json");
  await eventually(() => raw.frames.filter((f) => f.event === "pusher:error").length === 1);
  let deep: unknown = 1;
  for (let i = 0; i < 20; i++) deep = [deep];
  raw.send({ event: "client-deep", channel: "private-h", data: deep });
  await eventually(() => raw.frames.filter((f) => f.event === "pusher:error").length === 2);
  const errors = raw.frames.filter((f) => f.event === "pusher:error");
  assert.match(String((errors[0]!.data as { message: string }).message), /not JSON/);
  assert.match(String((errors[1]!.data as { message: string }).message), /deeper than 8/);
  raw.send({ event: "client-big", channel: "private-h", data: "x".repeat(5000) });
  assert.equal((await raw.closed).code, 1009);
});

Deno.test("signin: signin_success; the API's terminate closes the user 4009; a revocation too", async () => {
  const API_KEY = "pusher-test-api-key-0123456789abcdef";
  await using ts = await startPusherServer({ API_KEY });
  const alice = await connectPusher(ts, { user: { id: "42", name: "Alice" } });
  const other = await connectPusher(ts, { user: { id: "bob" } });
  try {
    const signedIn = nextEvent(alice.connection, "message");
    alice.signin();
    other.signin();
    await eventually(() => ts.server.pusher!.stats.get(APP.id)!.open.size === 2);
    await signedIn;
    await eventually(() =>
      [...ts.server.pusher!.stats.get(APP.id)!.open].filter((c) => c.signedIn !== undefined)
        .length === 2
    );
    const app = ts.server.pusher!.apps.byId(APP.id)!;
    const closes: number[] = [];
    alice.connection.bind("error", (e: { data?: { code?: number } }) => {
      if (e.data?.code !== undefined) closes.push(e.data.code);
    });
    await ts.server.pusher!.channels.terminateUser(app, "42");
    await eventually(() => alice.connection.state !== "connected");
    assert.equal(closes[0], 4009);
    assert.equal(other.connection.state, "connected");
    const res = await fetch(`${ts.httpUrl}/api/revoke`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ userId: "bob" }),
    });
    assert.equal(res.status, 202);
    await res.body?.cancel();
    await eventually(() => other.connection.state !== "connected");
  } finally {
    await disconnect(alice);
    await disconnect(other);
  }
});

Deno.test("/metrics shows per-app connections, channels and messages", async () => {
  await using ts = await startPusherServer();
  const a = await connectPusher(ts);
  try {
    await subscribed(a, "news");
    const text = await (await fetch(`${ts.httpUrl}/metrics`)).text();
    assert.match(text, /realtime_pusher_connections\{app="app-1"\} 1/);
    assert.match(text, /realtime_pusher_channels\{app="app-1"\} 1/);
    assert.match(text, /realtime_pusher_messages_out_total\{app="app-1"\} [1-9]/);
  } finally {
    await disconnect(a);
  }
});

Deno.test("pre-upgrade defences: the per-IP handshake rate (429) and the app's allowedOrigins (403)", async () => {
  await using ts = await startPusherServer({ HANDSHAKES_PER_MINUTE_PER_IP: "3" }, {
    allowedOrigins: ["https://app.example.com"],
  });
  const handshake = (origin: string) =>
    rawHandshake(ts.port, `/app/${APP.key}?protocol=7`, { origin });
  assert.equal((await handshake("https://evil.example.com")).status, 403);
  assert.equal((await handshake("https://app.example.com")).status, 101);
  assert.equal((await handshake("https://app.example.com")).status, 101);
  assert.equal((await handshake("https://app.example.com")).status, 429);
});

Deno.test("limits: maxPresenceMembersPerChannel and maxEventPayloadKb are Pusher's errors", async () => {
  await using ts = await startPusherServer({}, {
    maxPresenceMembersPerChannel: 1,
    maxEventPayloadKb: 1,
    enableClientMessages: true,
  });
  const ann = await connectPusher(ts, { presence: { user_id: "ann" } });
  const ben = await connectPusher(ts, { presence: { user_id: "ben" } });
  try {
    const chAnn = await subscribed(ann, "presence-small");
    const refused = nextEvent<{ type: string }>(
      ben.subscribe("presence-small"),
      "pusher:subscription_error",
    );
    assert.equal((await refused).type, "LimitReached");
    const error = nextEvent<{ data: { code: number; message: string } }>(ann.connection, "error");
    chAnn.trigger("client-big", { blob: "x".repeat(2000) });
    assert.equal((await error).data.code, 4301);
    assert.match((await error).data.message, /over 1 KB/);
  } finally {
    await disconnect(ann);
    await disconnect(ben);
  }
});
