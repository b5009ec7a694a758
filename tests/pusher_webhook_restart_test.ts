/**
 * Pusher webhook events survive a crash: a node whose Pusher app's webhook
 * receiver is down (answers 503) queues `channel_occupied`, `member_added`
 * and `client_event` in Redis (or KV), is killed with SIGKILL, and the next
 * process on the same store delivers every queued event once, each request
 * valid for the `pusher` SDK's `webhook().isValid()`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { eventually } from "./_helpers.ts";
import { type ServerProcess, spawnMain } from "./_process.ts";
import { redisTest, startRedisNode } from "./_redis.ts";
import { APP, connectPusher, disconnect, serverSdk, subscribed } from "./_pusher.ts";
import { type Receiver, startReceiver } from "./_webhook_receiver.ts";

/** Starts main.ts with the test's environment plus the store's. */
type Start = (env: Record<string, string>) => Promise<ServerProcess>;

/** An event as a line: `name channel[/user][ event]`. */
function line(e: Record<string, unknown>): string {
  const user = e.user_id === undefined ? "" : `/${e.user_id}`;
  return `${e.name} ${e.channel}${user}${e.event === undefined ? "" : ` ${e.event}`}`;
}

/** The events of every request the receiver answered 2xx, each request checked by the SDK. */
function delivered(receiver: Receiver): string[] {
  const sdk = serverSdk(1);
  const out: string[] = [];
  for (const request of receiver.requests) {
    if (request.status !== 200) continue;
    const hook = sdk.webhook({
      headers: Object.fromEntries(request.headers),
      rawBody: request.body,
    });
    assert.ok(hook.isValid(), "signed as the pusher SDK checks");
    out.push(...(hook.getEvents() as unknown as Record<string, unknown>[]).map(line));
  }
  return out.sort();
}

/** The events refused while the receiver was down. */
function refused(receiver: Receiver): string[] {
  return [...new Set(receiver.requests.flatMap((r) => r.json.events.map(line)))].sort();
}

async function killAndRestart(start: Start): Promise<void> {
  let up = false;
  await using receiver = startReceiver({
    secret: APP.secret,
    scheme: "pusher",
    answer: () => up ? 200 : 503,
  });
  const apps = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(
    apps,
    JSON.stringify([{ ...APP, enableClientMessages: true, webhooks: [{ url: receiver.url }] }]),
  );
  const env = {
    JWT_SECRET: "restart-test-secret-that-is-long-enough-0123",
    PUSHER_APPS_FILE: apps,
    WEBHOOK_TIMEOUT_MS: "1000",
  };
  const expected = [
    "channel_occupied news",
    "channel_occupied presence-hall",
    "client_event presence-hall/ann client-hello",
    "member_added presence-hall/ann",
    "member_added presence-hall/ben",
  ];
  try {
    const first = await start(env);
    try {
      const ann = await connectPusher(first, { presence: { user_id: "ann" } });
      const ben = await connectPusher(first, { presence: { user_id: "ben" } });
      await subscribed(ann, "news");
      const hall = await subscribed(ann, "presence-hall");
      await subscribed(ben, "presence-hall");
      hall.trigger("client-hello", { hi: 1 });
      await eventually(() => refused(receiver).length === expected.length, 8000, "all refused");
      assert.deepEqual(refused(receiver), expected);
      Deno.kill(first.pid, "SIGKILL");
      await Promise.all([disconnect(ann), disconnect(ben)]);
    } finally {
      await first.stop();
    }
    up = true;
    const second = await start(env);
    try {
      await eventually(
        () => expected.every((e) => delivered(receiver).includes(e)),
        15_000,
        "every queued event delivered",
      );
      // The dead node's channels are vacated only once it is reaped (PRESENCE_TTL_MS): later.
      const queued = delivered(receiver).filter((e) => expected.includes(e));
      assert.deepEqual(queued, expected, "each once");
    } finally {
      await second.stop();
    }
  } finally {
    await Deno.remove(apps);
  }
}

redisTest(
  "pusher webhooks (redis): a node killed with SIGKILL loses no queued event",
  async (redis) => {
    const channel = `pwh-${crypto.randomUUID()}`;
    await killAndRestart((env) =>
      startRedisNode(redis.url, channel, { env: { ...env, STORE: "redis" } })
    );
  },
);

Deno.test("pusher webhooks (kv): a server killed with SIGKILL loses no queued event", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pusher-webhook-kv-" });
  try {
    await killAndRestart((env) =>
      spawnMain({ ...env, STORE: "kv", KV_PATH: `${dir}/realtime.kv`, BUS: "memory" })
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
