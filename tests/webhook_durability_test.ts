/**
 * The webhook queue survives a crash: main.ts in a subprocess, on Redis and
 * on KV, queues events its receiver refuses, is killed with SIGKILL while
 * holding them (claimed, mid-retry), and a new process on the same store
 * delivers every one, once, with the ids they were queued with; one killed
 * mid-POST has its claimed batch sent by another node once the claim lapses.
 * And with two nodes on one Redis queue, each event is sent by one node.
 *
 * @module
 */
import assert from "node:assert/strict";
import { eventually, SECRET as JWT_SECRET, writePolicy } from "./_helpers.ts";
import { type ServerProcess, spawnMain } from "./_process.ts";
import { redisTest, startRedisNode } from "./_redis.ts";
import { startReceiver } from "./_webhook_receiver.ts";

const SECRET = "webhook-secret-that-is-long-enough-0123";
const API_KEY = "webhook-test-api-key-0123456789abcdef";
const EVENTS = 20;

/** Starts main.ts with the test's environment plus the store's. */
type Start = (env: Record<string, string>) => Promise<ServerProcess>;

async function publish(node: ServerProcess, room: string, n: number): Promise<void> {
  const res = await fetch(`${node.httpUrl}/api/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ room, payload: { n } }),
  });
  await res.body?.cancel();
  assert.equal(res.status, 202);
}

/** Events queued by a node killed while it held them all reach the receiver through the next one. */
async function killAndRestart(start: Start): Promise<void> {
  let open = false;
  await using receiver = startReceiver({ secret: SECRET, answer: () => open ? 200 : 503 });
  await using policy = await writePolicy([{ room: "*", users: "*", webhook: true }]);
  const env = {
    JWT_SECRET,
    API_KEY,
    ROOM_POLICY: policy.path,
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: SECRET,
    // A claim is hidden for the timeout + 2 s: 3 s here.
    WEBHOOK_TIMEOUT_MS: "1000",
  };
  const first = await start(env);
  const sent = new Set<number>();
  try {
    for (let n = 0; n < EVENTS; n++) {
      await publish(first, "orders", n);
      sent.add(n);
    }
    // Every event was claimed from the queue and refused: they are queued, and leased by `first`.
    await eventually(
      () =>
        new Set(receiver.requests.flatMap((r) => r.json.events.map((e) => e.id))).size === EVENTS,
      5000,
      "every event attempted once",
    );
    Deno.kill(first.pid, "SIGKILL");
  } finally {
    await first.stop();
  }
  const refusedIds = new Set(receiver.requests.flatMap((r) => r.json.events.map((e) => e.id)));
  open = true;
  const second = await start(env);
  try {
    await eventually(() => receiver.accepted().length >= EVENTS, 15_000, "every event delivered");
    const accepted = receiver.accepted();
    assert.equal(accepted.length, EVENTS, "each once");
    assert.deepEqual(new Set(accepted.map((e) => e.id)), refusedIds, "with the ids first queued");
    assert.deepEqual(
      new Set(accepted.map((e) => (e.payload as { n: number }).n)),
      sent,
    );
    assert.ok(receiver.requests.every((r) => r.signed));
  } finally {
    await second.stop();
  }
}

redisTest("webhooks (redis): a node killed with SIGKILL loses no queued event", async (redis) => {
  const channel = `wh-${crypto.randomUUID()}`;
  await killAndRestart((env) =>
    startRedisNode(redis.url, channel, { env: { ...env, STORE: "redis" } })
  );
});

Deno.test("webhooks (kv): a server killed with SIGKILL loses no queued event", async () => {
  const dir = await Deno.makeTempDir({ prefix: "webhook-kv-" });
  try {
    await killAndRestart((env) =>
      spawnMain({ ...env, STORE: "kv", KV_PATH: `${dir}/realtime.kv`, BUS: "memory" })
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

redisTest("webhooks (redis): two nodes on one queue send each event once", async (redis) => {
  await using receiver = startReceiver({ secret: SECRET });
  await using policy = await writePolicy([{ room: "*", users: "*", webhook: true }]);
  const channel = `wh-${crypto.randomUUID()}`;
  const env = {
    JWT_SECRET,
    API_KEY,
    ROOM_POLICY: policy.path,
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: SECRET,
    STORE: "redis",
  };
  await using a = await startRedisNode(redis.url, channel, { env });
  await using b = await startRedisNode(redis.url, channel, { env });
  for (let n = 0; n < EVENTS; n++) await publish(n % 2 === 0 ? a : b, "orders", n);
  await eventually(() => receiver.accepted().length >= EVENTS, 5000, "every event");
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const ids = receiver.accepted().map((e) => e.id);
  assert.equal(ids.length, EVENTS, "no event sent by both nodes");
  assert.equal(new Set(ids).size, EVENTS);
});

redisTest(
  "webhooks (redis): a node killed mid-POST: another node sends its batch within 10 s",
  async (redis) => {
    // The receiver never answers while `hang`: the first node dies holding the batch's lease.
    let hang = true;
    const held: ReadableStreamDefaultController<Uint8Array>[] = [];
    await using receiver = startReceiver({
      secret: SECRET,
      answer: () => {
        if (!hang) return 200;
        return new Response(new ReadableStream<Uint8Array>({ start: (c) => void held.push(c) }));
      },
    });
    await using policy = await writePolicy([{ room: "*", users: "*", webhook: true }]);
    const channel = `wh-${crypto.randomUUID()}`;
    const env = {
      JWT_SECRET,
      API_KEY,
      ROOM_POLICY: policy.path,
      WEBHOOK_URL: receiver.url,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_EVENTS: "message_published",
      STORE: "redis",
    };
    const doomed = await startRedisNode(redis.url, channel, { env });
    try {
      await publish(doomed, "orders", 1);
      await eventually(() => receiver.requests.length === 1, 5000, "the POST under way");
      Deno.kill(doomed.pid, "SIGKILL");
    } finally {
      await doomed.stop();
      for (const c of held) {
        try {
          c.close();
        } catch {
          // Cancelled already: the dead node's connection went with it.
        }
      }
    }
    hang = false;
    const killedAt = Date.now();
    await using survivor = await startRedisNode(redis.url, channel, { env });
    // The first request never got a complete answer; the second is the survivor's.
    await eventually(() => receiver.requests.length === 2, 10_000, "the batch, by the survivor");
    const after = Date.now() - killedAt;
    // The lease is WEBHOOK_TIMEOUT_MS (5 s) + 2 s from the claim; the survivor polls every 500 ms.
    assert.ok(after < 10_000, `sent ${after} ms after the kill`);
    const [first, second] = receiver.requests;
    assert.equal(second?.json.events[0]?.id, first?.json.events[0]?.id, "the same event id");
    assert.ok(second?.signed);
    await eventually(() => receiver.accepted().length === 2, 1000, "the survivor's 200");
    await survivor.stop();
  },
);
