/**
 * The webhook delivery engine against real HTTP receivers (`Deno.serve` on
 * port 0): signed batches, each event once despite failures (same ids on
 * every retry), what is and is not retried, `Retry-After`, the retry
 * window, the queue bound, hostile receivers cut off within the timeout
 * without blocking the event loop, and Pusher's format on the same engine.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MemoryAuditSink } from "../lib/audit.ts";
import { MemoryWebhookQueue } from "../lib/store/webhooks/memory.ts";
import { backoffMs, WebhookEngine, type WebhookEngineOptions } from "../lib/webhooks/engine.ts";
import { nativeSink, pusherSink, type WebhookSink } from "../lib/webhooks/sinks.ts";
import { eventually, sleep } from "./_helpers.ts";
import { startReceiver } from "./_webhook_receiver.ts";

const SECRET = "webhook-secret-that-is-long-enough-0123";

/** An engine over a memory queue, closed (with its queue) on dispose. */
function engineWith(
  sinks: WebhookSink[],
  options: Partial<WebhookEngineOptions> & { maxEntries?: number } = {},
) {
  const { maxEntries = 100_000, ...rest } = options;
  const queue = new MemoryWebhookQueue({ maxEntries });
  const audit = new MemoryAuditSink();
  const engine = new WebhookEngine({ queue, sinks, audit, ...rest });
  return {
    engine,
    audit,
    queue,
    async [Symbol.asyncDispose]() {
      await engine.close();
      await queue.close();
    },
  };
}

function native(url: string, extra: Partial<Parameters<typeof nativeSink>[0]> = {}) {
  return nativeSink({
    url,
    secret: SECRET,
    events: ["room_vacated", "message_published"],
    backoff: { initialMs: 100 },
    ...extra,
  });
}

Deno.test("webhooks: events arrive in one signed batch {id, time_ms, events}, each with its own id", async () => {
  await using receiver = startReceiver({ secret: SECRET });
  await using w = engineWith([native(receiver.url)]);
  for (const room of ["a", "b", "c"]) w.engine.emit({ name: "room_vacated", room });
  w.engine.emit({ name: "room_occupied", room: "not-subscribed" });
  await eventually(() => receiver.accepted().length === 3, 3000, "three events");
  assert.equal(receiver.requests.length, 1, "batched into one POST");
  const [request] = receiver.requests;
  assert.ok(request!.signed, "X-Realtime-Signature verifies");
  assert.match(request!.headers.get("x-realtime-signature")!, /^t=\d+,v1=[0-9a-f]{64}$/);
  assert.equal(request!.headers.get("content-type"), "application/json");
  assert.equal(typeof request!.json.id, "string");
  assert.ok(Math.abs(request!.json.time_ms - Date.now()) < 5000);
  const events = request!.json.events;
  assert.deepEqual(events.map((e) => e.room), ["a", "b", "c"]);
  assert.deepEqual(events.map((e) => e.name), ["room_vacated", "room_vacated", "room_vacated"]);
  assert.equal(new Set(events.map((e) => e.id)).size, 3, "unique ids");
  // The receiver holds the batch before its 200 reaches the engine, which counts it then.
  await eventually(() => w.engine.stats().sent === 3, 3000, "the engine counting three sent");
  assert.equal(w.engine.stats().depth, 0);
});

Deno.test("webhooks: a receiver failing twice then answering 200 gets each event once, same ids", async () => {
  await using receiver = startReceiver({ secret: SECRET, answer: (n) => n < 2 ? 500 : 200 });
  await using w = engineWith([native(receiver.url)]);
  w.engine.emit({ name: "room_vacated", room: "a" });
  w.engine.emit({ name: "message_published", room: "a", payload: { text: "hi" } });
  await eventually(() => receiver.accepted().length === 2, 5000, "delivery after two failures");
  await sleep(300);
  assert.equal(receiver.requests.length, 3);
  const ids = receiver.requests.map((r) => r.json.events.map((e) => e.id).join());
  assert.equal(new Set(ids).size, 1, "every attempt carries the same event ids");
  assert.notEqual(receiver.requests[0]!.json.id, receiver.requests[2]!.json.id, "batch ids differ");
  assert.ok(receiver.requests.every((r) => r.signed));
  assert.deepEqual(receiver.accepted().map((e) => e.name), ["room_vacated", "message_published"]);
  const stats = w.engine.stats();
  assert.deepEqual({ ...stats }, { sent: 2, failed: 2, retried: 4, dropped: 0, depth: 0 });
});

Deno.test("webhooks: 4xx (but 408/429) is not retried: dropped and audited", async () => {
  await using receiver = startReceiver({ secret: SECRET, answer: () => 400 });
  await using w = engineWith([native(receiver.url)]);
  w.engine.emit({ name: "room_vacated", room: "a" });
  await eventually(() => w.engine.stats().dropped === 1, 3000, "the drop");
  await sleep(400);
  assert.equal(receiver.requests.length, 1, "not retried");
  const [record] = w.audit.of("webhook_dropped");
  assert.equal(record?.reason, "HTTP 400");
  assert.equal(record?.url, receiver.url);
  assert.equal(w.engine.stats().failed, 1);
});

Deno.test("webhooks: 429 with Retry-After waits that long", async () => {
  const at: number[] = [];
  await using receiver = startReceiver({
    secret: SECRET,
    answer: (n) => {
      at.push(Date.now());
      return n === 0 ? new Response(null, { status: 429, headers: { "retry-after": "1" } }) : 200;
    },
  });
  await using w = engineWith([native(receiver.url)]);
  w.engine.emit({ name: "room_vacated", room: "a" });
  await eventually(() => receiver.accepted().length === 1, 4000, "the retry");
  assert.ok(at[1]! - at[0]! >= 950, `retried after ${at[1]! - at[0]!} ms, not the 100 ms back-off`);
});

Deno.test("webhooks: past WEBHOOK_RETRY_SEC an event is dropped with an audit record", async () => {
  await using receiver = startReceiver({ secret: SECRET, answer: () => 503 });
  await using w = engineWith([native(receiver.url, { retryForMs: 1500 })]);
  w.engine.emit({ name: "room_vacated", room: "a" });
  await eventually(() => w.engine.stats().dropped === 1, 5000, "the drop");
  const attempts = receiver.requests.length;
  assert.ok(attempts >= 2, `retried before giving up (${attempts} attempts)`);
  assert.match(String(w.audit.of("webhook_dropped")[0]?.reason), /^retried for 1500 ms: HTTP 503/);
  await sleep(500);
  assert.equal(receiver.requests.length, attempts, "nothing after the drop");
  assert.equal(w.engine.stats().depth, 0);
});

Deno.test("webhooks: a full queue drops the oldest, counted and audited", async () => {
  await using receiver = startReceiver({ secret: SECRET, answer: () => 503 });
  await using w = engineWith([native(receiver.url)], { maxEntries: 3 });
  for (let i = 0; i < 5; i++) w.engine.emit({ name: "room_vacated", room: `r${i}` });
  await w.engine.flush();
  assert.equal(w.engine.stats().dropped, 2);
  assert.equal(await w.queue.depth(native(receiver.url).id), 3);
  assert.equal(w.audit.of("webhook_dropped")[0]?.reason, "queue full");
  await eventually(() => receiver.requests.length >= 1, 3000, "an attempt");
  assert.deepEqual(receiver.requests[0]!.json.events.map((e) => e.room), ["r2", "r3", "r4"]);
});

Deno.test("webhooks: hostile receivers are cut off within the timeout and never block the loop", async () => {
  const huge = new Uint8Array(10 * 1024 * 1024);
  await using bigAnswer = startReceiver({ secret: SECRET, answer: () => new Response(huge) });
  await using slowAnswer = startReceiver({
    secret: SECRET,
    answer: () => {
      let timer: ReturnType<typeof setInterval> | undefined;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          timer = setInterval(() => controller.enqueue(new Uint8Array([32])), 1000);
        },
        cancel() {
          clearInterval(timer);
        },
      });
      return new Response(body);
    },
  });
  await using elsewhere = startReceiver({ secret: SECRET });
  await using redirect = startReceiver({
    secret: SECRET,
    answer: () => Response.redirect(elsewhere.url, 307),
  });
  const sinks = [bigAnswer, slowAnswer, redirect].map((r, i) =>
    native(r.url, { events: ["room_vacated"], retryForMs: i === 1 ? 100 : 3_600_000 })
  );
  await using w = engineWith(sinks, { timeoutMs: 800 });
  let worstGap = 0;
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    worstGap = Math.max(worstGap, now - last);
    last = now;
  }, 10);
  try {
    const started = performance.now();
    w.engine.emit({ name: "room_vacated", room: "a" });
    // 10 MB answer: read up to the bound, cut, the 200 counts.
    await eventually(() => w.engine.stats().sent === 1, 3000, "the 10 MB answer's 200");
    // 1 byte/s answer: cut at the timeout, a failure, dropped (its window is 100 ms).
    // Redirect: not followed, rejected.
    await eventually(() => w.engine.stats().dropped === 2, 3000, "the slow and the redirect");
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 800 + 1500, `all settled in ${Math.round(elapsed)} ms`);
  } finally {
    clearInterval(ticker);
  }
  assert.equal(elsewhere.requests.length, 0, "the redirect was not followed");
  const reasons = w.audit.of("webhook_dropped").map((r) => String(r.reason)).sort();
  assert.match(reasons[0]!, /^HTTP 307: redirects are not followed/);
  assert.match(reasons[1]!, /no complete answer within 800 ms/);
  assert.ok(worstGap < 200, `event loop stalled ${Math.round(worstGap)} ms`);
});

Deno.test("webhooks: an unreachable receiver is retried, its errors never thrown at emit", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${listener.addr.port}/hooks`;
  listener.close();
  await using w = engineWith([native(url)]);
  w.engine.emit({ name: "room_vacated", room: "a" });
  await eventually(() => w.engine.stats().retried >= 2, 3000, "retries");
  assert.equal(w.engine.stats().depth, 1);
});

Deno.test("webhooks: back-off starts near 1 s, doubles, is capped, and jitters ±20%", () => {
  const policy = { initialMs: 1000, maxMs: 60_000, forMs: 3_600_000 };
  assert.equal(backoffMs(policy, 1, 0.5), 1000);
  assert.equal(backoffMs(policy, 2, 0.5), 2000);
  assert.equal(backoffMs(policy, 3, 0.5), 4000);
  assert.equal(backoffMs(policy, 7, 0.5), 60_000);
  assert.equal(backoffMs(policy, 100, 0.5), 60_000);
  assert.equal(backoffMs(policy, 1, 0), 800);
  assert.equal(backoffMs(policy, 1, 0.999), 1200);
});

Deno.test("webhooks: Pusher's format on the same engine: X-Pusher-Key, body HMAC, filter, extra headers", async () => {
  const appSecret = "pusher-app-secret";
  await using receiver = startReceiver({ secret: appSecret, scheme: "pusher" });
  const sink = pusherSink({
    url: receiver.url,
    key: "app-key",
    secret: appSecret,
    events: ["channel_vacated"],
    headers: { "X-Custom": "yes" },
    ownEvent: (event) => event.app === "1",
  });
  await using w = engineWith([sink]);
  w.engine.emit({ name: "channel_vacated", channel: "c1", app: "1" });
  w.engine.emit({ name: "channel_vacated", channel: "c2", app: "2" });
  w.engine.emit({ name: "channel_occupied", channel: "c3", app: "1" });
  await eventually(() => receiver.accepted().length === 1, 3000, "the Pusher batch");
  const [request] = receiver.requests;
  assert.ok(request!.signed, "X-Pusher-Signature verifies");
  assert.equal(request!.headers.get("x-pusher-key"), "app-key");
  assert.equal(request!.headers.get("x-custom"), "yes");
  assert.deepEqual(Object.keys(request!.json).sort(), ["events", "time_ms"]);
  assert.deepEqual(request!.json.events, [{ name: "channel_vacated", channel: "c1" }]);
});
