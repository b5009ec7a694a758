/**
 * The native webhooks through a whole server and a real receiver:
 * `message_published` for rooms whose policy rule sets `"webhook": true`
 * (from a socket and from `POST /api/publish`, in plain and history rooms),
 * `connection_closed` when opted in, the `/metrics` series, and a receiver
 * that never sees the user's token.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  connect,
  connectAs,
  eventually,
  join,
  sleep,
  startServer,
  token,
  writePolicy,
} from "./_helpers.ts";
import { startReceiver } from "./_webhook_receiver.ts";

const SECRET = "webhook-secret-that-is-long-enough-0123";
const API_KEY = "webhook-test-api-key-0123456789abcdef";

Deno.test("webhooks: message_published for webhook rooms only, from sockets and the publish API", async () => {
  await using receiver = startReceiver({ secret: SECRET });
  await using policy = await writePolicy([
    // The first rule that matches and sets `webhook` decides.
    { room: "orders:quiet", webhook: false },
    { room: "orders:*", users: "*", webhook: true },
    { room: "*", users: "*" },
  ]);
  await using ts = await startServer({
    ROOM_POLICY: policy.path,
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_EVENTS: "message_published",
    API_KEY,
    HISTORY_SIZE: "0",
  });
  const alice = await connectAs(ts, "alice");
  for (const room of ["orders:1", "orders:quiet", "chat"]) await join(alice, room);
  for (const room of ["orders:1", "orders:quiet", "chat"]) {
    const ack = await alice.request({ type: "message", room, payload: { n: room }, id: room });
    assert.equal(ack.type, "ack");
  }
  const api = await fetch(`${ts.httpUrl}/api/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ room: "orders:2", payload: { via: "api" } }),
  });
  assert.equal(api.status, 202);
  await api.body?.cancel();
  await eventually(() => receiver.accepted().length === 2, 3000, "two message_published");
  await sleep(600);
  const events = receiver.accepted();
  assert.equal(events.length, 2, "only the webhook rooms");
  assert.ok(receiver.requests.every((r) => r.signed));
  const byRoom = Object.fromEntries(events.map((e) => [e.room, e]));
  assert.deepEqual(
    { name: byRoom["orders:1"]?.name, publisher: byRoom["orders:1"]?.publisher },
    { name: "message_published", publisher: "alice" },
  );
  assert.deepEqual(byRoom["orders:1"]?.payload, { n: "orders:1" });
  assert.deepEqual(byRoom["orders:2"]?.payload, { via: "api" });
  assert.equal(typeof byRoom["orders:2"]?.publisher, "string");
  await alice.close();
});

Deno.test("webhooks: a history room's message is sent once it is stored; a resend is not", async () => {
  await using receiver = startReceiver({ secret: SECRET });
  await using policy = await writePolicy([{ room: "*", users: "*", webhook: true }]);
  await using ts = await startServer({
    ROOM_POLICY: policy.path,
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_EVENTS: "message_published",
    HISTORY_SIZE: "10",
  });
  const alice = await connectAs(ts, "alice");
  await join(alice, "log");
  for (let i = 0; i < 2; i++) {
    const ack = await alice.request({ type: "message", room: "log", payload: "once", id: "same" });
    assert.equal(ack.type, "ack");
  }
  await eventually(() => receiver.accepted().length === 1, 3000, "the message");
  await sleep(600);
  assert.equal(receiver.accepted().length, 1, "the duplicate was not sent");
  await alice.close();
});

Deno.test("webhooks: connection_closed is opt-in, with code and reason; the token never reaches the receiver", async () => {
  await using receiver = startReceiver({ secret: SECRET });
  await using quiet = startReceiver({ secret: SECRET });
  await using ts = await startServer({
    WEBHOOK_URL: `${receiver.url},${quiet.url}`,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_EVENTS: "connection_closed",
  });
  const t = await token("bob");
  const { client, welcome } = await connect(`${ts.wsUrl}?token=${t}`);
  client.ws.close(4000, "bye now");
  await client.closed;
  await eventually(() => receiver.accepted().length === 1, 3000, "connection_closed");
  const [event] = receiver.accepted();
  assert.deepEqual(
    {
      name: event?.name,
      userId: event?.userId,
      connectionId: event?.connectionId,
      code: event?.code,
      reason: event?.reason,
    },
    {
      name: "connection_closed",
      userId: "bob",
      connectionId: welcome.connectionId,
      code: 4000,
      reason: "bye now",
    },
  );
  await eventually(() => quiet.accepted().length === 1, 3000, "every URL gets it");
  for (const r of [...receiver.requests, ...quiet.requests]) {
    const seen = `${r.url}\n${[...r.headers].join("\n")}\n${r.body}`;
    assert.ok(!seen.includes(t), "the token is not in the URL, headers or body");
    assert.ok(!seen.includes(t.split(".")[2]!), "not even its signature");
  }
});

Deno.test("webhooks: /metrics and the admin page have sent, failed, retried, dropped and queue depth", async () => {
  await using receiver = startReceiver({ secret: SECRET, answer: (n) => n === 0 ? 500 : 200 });
  await using ts = await startServer({
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_EVENTS: "connection_closed",
    API_KEY,
  });
  const bob = await connectAs(ts, "bob");
  await bob.close();
  await eventually(() => receiver.accepted().length === 1, 5000, "delivery after one failure");
  let text = "";
  const value = (name: string) => Number(text.match(new RegExp(`^${name} (\\d+)$`, "m"))?.[1]);
  // The receiver holds the batch a moment before the engine has read its answer.
  for (let i = 0; i < 50 && value("realtime_webhook_sent_total") !== 1; i++) {
    if (i > 0) await sleep(50);
    text = await (await fetch(`${ts.httpUrl}/metrics`)).text();
  }
  assert.equal(value("realtime_webhook_sent_total"), 1);
  assert.equal(value("realtime_webhook_failed_total"), 1);
  assert.equal(value("realtime_webhook_retried_total"), 1);
  assert.equal(value("realtime_webhook_dropped_total"), 0);
  assert.equal(value("realtime_webhook_queue_depth"), 0);
  const stats = await fetch(`${ts.httpUrl}/api/admin/stats`, {
    headers: { authorization: `Bearer ${API_KEY}` },
  });
  assert.equal(stats.status, 200);
  const { sections } = await stats.json();
  assert.deepEqual(sections.webhooks, {
    sent: 1,
    failed: 1,
    retried: 1,
    dropped: 0,
    depth: 0,
    queue: "memory",
  });
});
