/**
 * Deno KV end to end: real server processes on one KV file. A single node
 * restarted keeps its rooms' history; `deno serve --parallel` isolates share
 * history, tickets and (with `BUS=kv`) live traffic through KV; fault
 * injection on the BroadcastChannel bus is healed by the KV store.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Client, connect, eventually, type Msg, SECRET, token } from "./_helpers.ts";
import { freePort, type ServerProcess, spawnServer } from "./_process.ts";

const BASE_ENV = {
  JWT_SECRET: SECRET,
  HOSTNAME: "127.0.0.1",
  LOG_LEVEL: "error",
  RATE_LIMIT_CAPACITY: "1000",
  HISTORY_SIZE: "1000",
};

async function tempKv(): Promise<{ path: string; remove(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "kv-e2e-" });
  return { path: `${dir}/realtime.kv`, remove: () => Deno.remove(dir, { recursive: true }) };
}

/** `deno task start` on a KV store. */
function startNode(env: Record<string, string>): Promise<ServerProcess> {
  const port = freePort();
  return spawnServer(
    [
      "run",
      "--unstable-kv",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "main.ts",
    ],
    { port, env: { ...BASE_ENV, PORT: String(port), ...env } },
  );
}

/** `deno task start:parallel` with two isolates. */
function startParallel(env: Record<string, string>): Promise<ServerProcess> {
  const port = freePort();
  return spawnServer(["run", "-A", "scripts/serve_parallel.ts"], {
    port,
    processGroup: true,
    stopTimeoutMs: 3000,
    env: {
      ...BASE_ENV,
      PORT: String(port),
      BUS_CHANNEL: `kv-${crypto.randomUUID()}`,
      DENO_JOBS: "2",
      ...env,
    },
  });
}

async function connectTo(
  server: ServerProcess,
  sub: string,
): Promise<{ client: Client; welcome: Msg }> {
  return await connect(`${server.wsUrl}?token=${await token(sub)}`);
}

async function joinRoom(client: Client, room: string, since?: unknown): Promise<Msg> {
  const id = `j-${crypto.randomUUID()}`;
  const reply = await client.request(
    since === undefined ? { type: "join", room, id } : { type: "join", room, id, since },
  );
  assert.equal(reply.type, "joined", JSON.stringify(reply));
  return reply;
}

async function publish(client: Client, room: string, payload: unknown): Promise<Msg> {
  const id = `p-${crypto.randomUUID()}`;
  const ack = await client.request({ type: "message", room, payload, id }, 10_000);
  assert.equal(ack.type, "ack", JSON.stringify(ack));
  return ack;
}

/** Collects a room's messages as they arrive. */
function collect(client: Client, room: string): Msg[] {
  const got: Msg[] = [];
  client.ws.addEventListener("message", (e) => {
    for (const line of String(e.data).split("\n")) {
      const m = JSON.parse(line) as Msg;
      if (m.type === "message" && m.room === room) got.push(m);
    }
  });
  return got;
}

Deno.test("kv: a single node restarted on its KV file recovers with since", async () => {
  const kv = await tempKv();
  let server: ServerProcess | undefined;
  const clients: Client[] = [];
  try {
    const env = { STORE: "kv", KV_PATH: kv.path, BUS: "memory" };
    server = await startNode(env);
    const health = await (await fetch(`${server.httpUrl}/healthz`)).json();
    assert.equal(health.history.transport, "kv");
    const { client } = await connectTo(server, "alice");
    clients.push(client);
    const joined = await joinRoom(client, "chat");
    for (let n = 1; n <= 5; n++) await publish(client, "chat", { n });
    const epoch = joined.epoch;
    await client.close();
    await server.stop();
    server = await startNode(env);
    // 3 more while the client is away, then it comes back with what it had seen.
    const other = (await connectTo(server, "bob")).client;
    clients.push(other);
    await joinRoom(other, "chat");
    for (let n = 6; n <= 8; n++) await publish(other, "chat", { n });
    const back = (await connectTo(server, "alice")).client;
    clients.push(back);
    const got = collect(back, "chat");
    const rejoined = await joinRoom(back, "chat", { offset: 3, epoch });
    assert.deepEqual([rejoined.recovered, rejoined.missed, rejoined.epoch], [true, 5, epoch]);
    await eventually(() => got.length === 5, 5000, "5 replayed messages");
    assert.deepEqual(got.map((m) => m.offset), [4, 5, 6, 7, 8]);
    assert.deepEqual(got.map((m) => (m.payload as { n: number }).n), [4, 5, 6, 7, 8]);
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    await server?.stop();
    await kv.remove();
  }
});
