/**
 * Pusher across isolates and nodes: two Redis nodes, and two
 * `deno task start:parallel` isolates on `STORE=kv`. `pusher-js` clients on
 * different isolates see one presence list (member_added once per user),
 * each other's client events, and a cache channel's last event.
 *
 * @module
 */
import assert from "node:assert/strict";
import { eventually } from "./_helpers.ts";
import { type ServerProcess, spawnParallel, startAll } from "./_process.ts";
import { redisTest, startRedisNode } from "./_redis.ts";
import { APP, connectPusher, disconnect, nextEvent, type Pusher, subscribed } from "./_pusher.ts";

const BASE_ENV = {
  HOSTNAME: "127.0.0.1",
  LOG_LEVEL: "error",
  JWT_SECRET: "cluster-test-secret-that-is-long-enough-0123",
  PRESENCE_DIFF_MS: "20",
  HANDSHAKES_PER_MINUTE_PER_IP: "100000",
  RATE_LIMIT_CAPACITY: "10000",
};

/** An apps file with client events enabled, removed on dispose. */
async function appsFile(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(path, JSON.stringify([{ ...APP, enableClientMessages: true }]));
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path) };
}

type Members = { count: number; each(fn: (m: { id: string }) => void): void };

function ids(members: Members): string[] {
  const out: string[] = [];
  members.each((m) => out.push(m.id));
  return out.sort();
}

async function closeAll(clients: Pusher[]): Promise<void> {
  await Promise.all(clients.map(disconnect));
}

redisTest("redis: two nodes share presence, client events and cache channels", async (redis) => {
  await using apps = await appsFile();
  const busChannel = `pusher-${crypto.randomUUID()}`;
  const env = { ...BASE_ENV, PUSHER_APPS_FILE: apps.path };
  await using nodes = await startAll([
    startRedisNode(redis.url, busChannel, { env }),
    startRedisNode(redis.url, busChannel, { env }),
  ]);
  const [one, two] = nodes;
  const ann = await connectPusher(one, { presence: { user_id: "ann" } });
  const ann2 = await connectPusher(two, { presence: { user_id: "ann" } });
  const ben = await connectPusher(two, { presence: { user_id: "ben" } });
  try {
    const chAnn = ann.subscribe("presence-hall");
    assert.deepEqual(ids(await nextEvent<Members>(chAnn, "pusher:subscription_succeeded")), [
      "ann",
    ]);
    const added: string[] = [];
    chAnn.bind("pusher:member_added", (m: { id: string }) => added.push(m.id));
    await subscribed(ann2, "presence-hall");
    const chBen = ben.subscribe("presence-hall");
    const seen = await nextEvent<Members>(chBen, "pusher:subscription_succeeded");
    assert.deepEqual(ids(seen), ["ann", "ben"]);
    await eventually(() => added.length === 1, 5000, "ben added on node one");
    assert.deepEqual(added, ["ben"]);
    const wave = new Promise<string | undefined>((resolve) =>
      chAnn.bind("client-wave", (_: unknown, meta: { user_id?: string }) => resolve(meta?.user_id))
    );
    chBen.trigger("client-wave", { hi: 1 });
    assert.equal(await wave, "ben");
    const removed: string[] = [];
    chAnn.bind("pusher:member_removed", (m: { id: string }) => removed.push(m.id));
    await disconnect(ben);
    await eventually(() => removed.length === 1, 5000, "ben removed on node one");
    // ann's second connection, on the other node, leaving does not remove ann.
    await disconnect(ann2);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(removed, ["ben"]);
    const cache = await subscribed(ann, "private-cache-score");
    cache.trigger("client-score", { n: 7 });
    const late = await connectPusher(two);
    try {
      assert.deepEqual(await nextEvent(late.subscribe("private-cache-score"), "client-score"), {
        n: 7,
      });
    } finally {
      await disconnect(late);
    }
  } finally {
    await closeAll([ann, ann2, ben]);
  }
});

Deno.test("kv: two start:parallel isolates share presence and client events", async () => {
  await using apps = await appsFile();
  const dir = await Deno.makeTempDir({ prefix: "pusher-kv-" });
  let server: ServerProcess | undefined;
  const clients: Pusher[] = [];
  try {
    server = await spawnParallel({
      ...BASE_ENV,
      STORE: "kv",
      KV_PATH: `${dir}/realtime.kv`,
      BUS: "broadcast",
      BUS_CHANNEL: `pusher-kv-${crypto.randomUUID()}`,
      PUSHER_APPS_FILE: apps.path,
    });
    // Eight connections: the kernel spreads them over both isolates (all on
    // one has a chance of 1 in 128, and then the test proves less, not wrongly).
    for (let i = 0; i < 8; i++) {
      clients.push(await connectPusher(server, { presence: { user_id: `u${i}` } }));
    }
    const channels = await Promise.all(clients.map((c) => subscribed(c, "presence-kv")));
    const counts = channels.map(() => 0);
    channels.forEach((ch, i) => {
      const members = (ch as unknown as { members: { count: number } }).members;
      const update = () => counts[i] = members.count;
      update();
      ch.bind("pusher:member_added", update);
    });
    await eventually(() => counts.every((n) => n === 8), 10_000, `counts ${counts}`);
    const got = channels.slice(1).map((ch) => nextEvent(ch, "client-ping", 10_000));
    channels[0]!.trigger("client-ping", { from: 0 });
    for (const data of await Promise.all(got)) assert.deepEqual(data, { from: 0 });
  } finally {
    await closeAll(clients);
    await server?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
