/**
 * Issue 15, item 1: a text message sent as continuation frames. Deno's own
 * WebSocket bounds each frame (64 MiB) but not the message: it grows until
 * V8's string limit (~512 MiB), where the runtime throws in its WebSocket
 * loop and, unguarded, the process exits (docs/upstream/deno-websocket-fragments.md).
 *
 * - Default (`WS_ENGINE=ws`): the engine counts the whole message, fragments
 *   included, against `MAX_MESSAGE_BYTES` and closes the attacker with 1009
 *   long before the server's memory grows; a bystander's pings stay fast;
 *   the same under `start:parallel`.
 * - `WS_ENGINE=deno`: the message is read up to the string limit, but the
 *   process-wide guard in main.ts keeps the process (and its clients) alive.
 *
 * @module
 */
import assert from "node:assert/strict";
import { mintToken } from "../lib/dev.ts";
import { type ServerProcess, spawnMain, spawnParallel } from "./_process.ts";
import { type Client, connect, rawWebSocket, sleep } from "./_helpers.ts";

const SECRET = "f".repeat(40);
const KEY = new TextEncoder().encode(SECRET);
const MiB = 1024 * 1024;

/** One client frame header (mask key 0: the payload goes as is), text opcode on the first. */
function frameHeader(first: boolean, fin: boolean, size: number): Uint8Array {
  const head = new Uint8Array(14);
  head[0] = (fin ? 0x80 : 0) | (first ? 0x1 : 0x0);
  head[1] = 0x80 | 127;
  new DataView(head.buffer).setBigUint64(2, BigInt(size));
  return head;
}

/** Resident memory of `pid` and every process below it, from /proc (bytes). */
function treeRss(pid: number): number {
  let rss = 0;
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      const children = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`);
      for (const child of children.split(" ").filter(Boolean)) rss += treeRss(Number(child));
    }
  } catch {
    // The process is gone.
  }
  return rss;
}

interface AttackResult {
  /** Bytes the attacker got out before the server cut it off (or the total). */
  sent: number;
  /** Whether the server closed the connection before the whole message went. */
  cut: boolean;
  /** Largest growth of the server's RSS seen while sending. */
  rssGrowth: number;
}

/** Sends up to `total` bytes as one fragmented text message in `frame`-byte frames. */
async function fragmentAttack(
  server: ServerProcess,
  total: number,
  frame: number,
): Promise<AttackResult> {
  const attacker = await rawWebSocket(
    server.port,
    `/ws?token=${await mintToken(KEY, { sub: "mallory" })}`,
  );
  const before = treeRss(server.pid);
  let peak = before;
  const payload = new Uint8Array(frame).fill(0x61);
  const deadline = performance.now() + 60_000;
  let sent = 0;
  let cut = false;
  try {
    while (sent < total && performance.now() < deadline) {
      await attacker.write(frameHeader(sent === 0, sent + frame >= total, frame));
      for (let off = 0; off < frame;) off += await attacker.write(payload.subarray(off));
      sent += frame;
      if (sent % (16 * MiB) === 0) peak = Math.max(peak, treeRss(server.pid));
    }
  } catch {
    cut = true;
  } finally {
    attacker.close();
  }
  return { sent, cut, rssGrowth: Math.max(peak, treeRss(server.pid)) - before };
}

/** A joined client pinging every 20 ms until stopped; resolves with every round trip. */
function bystander(client: Client): { stop(): Promise<number[]> } {
  const rtts: number[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running && i < 10_000; i++) {
      const started = performance.now();
      client.send({ type: "ping", id: `p${i}` });
      await client.next((m) => m.type === "pong" && m.id === `p${i}`, 5000);
      rtts.push(performance.now() - started);
      await sleep(20);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return rtts;
    },
  };
}

async function servesNewClient(server: ServerProcess): Promise<void> {
  const health = await fetch(`${server.httpUrl}/healthz`);
  assert.equal(health.status, 200, server.output());
  await health.body?.cancel();
  const alice = await mintToken(KEY, { sub: "alice", rooms: ["*"] });
  const { client, welcome } = await connect(`${server.wsUrl}?token=${alice}`);
  assert.equal(welcome.type, "welcome");
  await client.close();
}

async function boundedAttack(server: ServerProcess, connections: number): Promise<void> {
  const bob = await mintToken(KEY, { sub: "bob", rooms: ["*"] });
  const { client } = await connect(`${server.wsUrl}?token=${bob}`);
  const pings = bystander(client);
  try {
    for (let i = 0; i < connections; i++) {
      // 16 KiB frames: each frame is small, only the whole message is over the limit.
      const result = await fragmentAttack(server, 600 * MiB, 16 * 1024);
      assert.ok(result.cut, `the attacker sent all ${result.sent >> 20} MiB`);
      assert.ok(result.sent < 64 * MiB, `the attacker got ${result.sent >> 20} MiB in`);
      assert.ok(result.rssGrowth < 200 * MiB, `RSS grew ${result.rssGrowth >> 20} MiB`);
    }
  } finally {
    const rtts = (await pings.stop()).sort((a, b) => a - b);
    await client.close();
    assert.ok(rtts.length > 0, "the bystander got no pong");
    const p99 = rtts[Math.floor(rtts.length * 0.99)]!;
    assert.ok(p99 < 250, `bystander ping p99 ${p99.toFixed(0)} ms`);
  }
  await servesNewClient(server);
}

Deno.test("ws engine: 600 MiB of fragments are cut at MAX_MESSAGE_BYTES, memory flat, bystander unaffected", async () => {
  const server = await spawnMain({ JWT_SECRET: SECRET });
  try {
    await boundedAttack(server, 1);
  } finally {
    const status = await server.stop();
    assert.equal(status.signal, null, `killed by ${status.signal}: ${server.output()}`);
  }
});

Deno.test("ws engine under start:parallel: fragment attacks on both isolates change nothing", async () => {
  const server = await spawnParallel({ JWT_SECRET: SECRET, BUS: "broadcast", LOG_LEVEL: "error" });
  try {
    await boundedAttack(server, 4);
  } finally {
    await server.stop();
  }
});

Deno.test("deno engine: 600 MiB of fragments do not end the process (the guard)", async () => {
  const server = await spawnMain({ JWT_SECRET: SECRET, WS_ENGINE: "deno" });
  try {
    const result = await fragmentAttack(server, 600 * MiB, 4 * MiB);
    assert.ok(result.sent > 520 * MiB, `only ${result.sent >> 20} MiB went out`);
    // Give the runtime time to fail on the string it cannot build.
    await sleep(2000);
    await servesNewClient(server);
  } finally {
    const status = await server.stop();
    assert.equal(status.signal, null, `killed by ${status.signal}: ${server.output()}`);
  }
});
