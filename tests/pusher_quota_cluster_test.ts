/**
 * A Pusher app's `maxConnections` counted cluster-wide (`LIMITS_STORE`): two
 * Redis nodes share one quota, so the connection over it gets `pusher:error`
 * and close 4004 on whichever node it opens, and a connection that ends
 * frees its place for any node.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startAll } from "./_process.ts";
import { redisTest, startRedisNode } from "./_redis.ts";
import { APP } from "./_pusher.ts";

/** A raw Pusher socket: its first frame's event (and error code), and its close code. */
interface Opened {
  readonly ws: WebSocket;
  readonly first: { event: string; code?: number };
  readonly closed: Promise<number>;
}

async function open(port: number): Promise<Opened> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/app/${APP.key}?protocol=7`);
  const closed = new Promise<number>((resolve) => ws.onclose = (e) => resolve(e.code));
  const first = await new Promise<{ event: string; code?: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no first frame within 5 s")), 5000);
    ws.onmessage = (e) => {
      clearTimeout(timer);
      const frame = JSON.parse(String(e.data));
      const data = typeof frame.data === "string" ? JSON.parse(frame.data) : frame.data;
      resolve({ event: frame.event, code: data?.code ?? undefined });
    };
  });
  return { ws, first, closed };
}

async function close(socket: Opened): Promise<void> {
  if (socket.ws.readyState !== WebSocket.CLOSED) socket.ws.close();
  await socket.closed;
}

redisTest(
  "pusher maxConnections is the app's across two nodes (LIMITS_STORE=redis)",
  async (redis) => {
    const apps = await Deno.makeTempFile({ suffix: ".json" });
    await Deno.writeTextFile(apps, JSON.stringify([{ ...APP, maxConnections: 2 }]));
    const sockets: Opened[] = [];
    try {
      const env = {
        JWT_SECRET: "quota-test-secret-that-is-long-enough-0123",
        PUSHER_APPS_FILE: apps,
        LIMITS_STORE: "redis",
      };
      const channel = `quota-${crypto.randomUUID()}`;
      await using nodes = await startAll([
        startRedisNode(redis.url, channel, { env }),
        startRedisNode(redis.url, channel, { env }),
      ]);
      const [one, two] = nodes;
      sockets.push(await open(one.port), await open(two.port));
      for (const s of sockets) assert.equal(s.first.event, "pusher:connection_established");
      const over = await open(one.port);
      sockets.push(over);
      assert.deepEqual(over.first, { event: "pusher:error", code: 4004 });
      assert.equal(await over.closed, 4004, "the third connection of the app, on either node");
      await close(sockets[1]!);
      // The place freed on node two is taken on node one.
      let again: Opened | undefined;
      for (let i = 0; i < 20 && again?.first.event !== "pusher:connection_established"; i++) {
        if (again !== undefined) await close(again);
        again = await open(one.port);
      }
      sockets.push(again!);
      assert.equal(again!.first.event, "pusher:connection_established");
    } finally {
      await Promise.all(sockets.map(close));
      await Deno.remove(apps);
    }
  },
);
