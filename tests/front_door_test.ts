/**
 * Issue 15, item 2: what `Deno.serve` lets through below our code, closed by
 * the node front door (lib/edge/node_server.ts):
 *
 * - at the fd limit `Deno.serve`'s accept fails with EMFILE and the process
 *   exits (docs/upstream/deno-serve-emfile.md): the front door keeps its
 *   sockets below the limit, refuses (503) or sheds the oldest unfinished
 *   request heads, and goes on serving;
 * - an unfinished request head was never timed out: it is closed after
 *   `HEADERS_TIMEOUT_MS`, however slowly it trickles;
 * - a request head past 16 KiB is a 431.
 *
 * @module
 */
import assert from "node:assert/strict";
import { mintToken } from "../lib/dev.ts";
import { type ServerProcess, spawnMain } from "./_process.ts";
import { connect, join } from "./_helpers.ts";
import { connectionBudget } from "../lib/edge/listen.ts";
import { reservedDescriptors } from "../lib/edge/fd_budget.ts";

const SECRET = "g".repeat(40);
const KEY = new TextEncoder().encode(SECRET);
const encoder = new TextEncoder();

/** Resolves with how the connection ended within `ms`: "closed" (EOF, reset, or a response), or "open". */
async function fate(conn: Deno.TcpConn, ms: number): Promise<"closed" | "open"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"open">((resolve) => timer = setTimeout(() => resolve("open"), ms));
  const read = conn.read(new Uint8Array(512)).then(
    () => "closed" as const,
    () => "closed" as const,
  );
  const result = await Promise.race([read, timeout]);
  clearTimeout(timer);
  return result;
}

async function welcomes(server: ServerProcess): Promise<void> {
  const alice = await mintToken(KEY, { sub: "alice", rooms: ["*"] });
  const { client, welcome } = await connect(`${server.wsUrl}?token=${alice}`);
  assert.equal(welcome.type, "welcome");
  await client.close();
}

Deno.test("1,200 silent connections under a 1,024-fd limit: refused or shed, never a crash; a new client is served", async () => {
  const server = await spawnMain({ JWT_SECRET: SECRET }, { openFiles: 1024 });
  const silent: Deno.TcpConn[] = [];
  try {
    const deadline = performance.now() + 30_000;
    for (let i = 0; i < 1200 && performance.now() < deadline; i++) {
      silent.push(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
    }
    assert.equal(silent.length, 1200);
    // The server still answers, over a connection of its own.
    const health = await fetch(`${server.httpUrl}/healthz`);
    assert.equal(health.status, 200, server.output());
    await health.body?.cancel();
    await welcomes(server);
    const fates = await Promise.all(silent.map((c) => fate(c, 3000)));
    const closed = fates.filter((f) => f === "closed").length;
    const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
    const count = (name: string) => Number(new RegExp(`^${name} (\\d+)`, "m").exec(metrics)?.[1]);
    assert.ok(count("realtime_edge_max_sockets") < 1024, metrics);
    assert.ok(
      count("realtime_edge_refused_total") + count("realtime_edge_shed_total") >= 1200 - 960,
      metrics,
    );
    // ~ 1,024 less the reserve can be held; the rest were refused or shed.
    assert.ok(closed >= 1200 - 960, `only ${closed} of 1,200 silent connections were closed`);
    assert.doesNotMatch(server.output(), /Too many open files/);
  } finally {
    for (const c of silent) {
      try {
        c.close();
      } catch {
        // closed by the server
      }
    }
    const status = await server.stop();
    assert.equal(status.signal, null, `killed by ${status.signal}: ${server.output()}`);
    assert.equal(status.code, 0, server.output());
  }
});

Deno.test("an unfinished request head is closed after HEADERS_TIMEOUT_MS, even trickling", async () => {
  const server = await spawnMain({ JWT_SECRET: SECRET, HEADERS_TIMEOUT_MS: "1500" });
  const conns: Deno.TcpConn[] = [];
  let trickling = true;
  try {
    // A WebSocket lives on past the head deadline.
    const bob = await mintToken(KEY, { sub: "bob", rooms: ["*"] });
    const { client } = await connect(`${server.wsUrl}?token=${bob}`);
    const started = performance.now();
    for (let i = 0; i < 10; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await conn.write(encoder.encode("GET /healthz HTTP/1.1\r\nhost: x\r\n"));
      conns.push(conn);
    }
    const trickle = (async () => {
      for (let i = 0; trickling && i < 50; i++) {
        await new Promise((r) => setTimeout(r, 200));
        await Promise.all(
          conns.map((c) => c.write(encoder.encode(`x-${i}: y\r\n`)).catch(() => 0)),
        );
      }
    })();
    const ends = await Promise.all(conns.map(async (c) => {
      assert.equal(await fate(c, 10_000), "closed");
      return performance.now() - started;
    }));
    trickling = false;
    await trickle;
    for (const ms of ends) assert.ok(ms >= 1300 && ms < 5000, `closed after ${ms.toFixed(0)} ms`);
    const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
    assert.match(metrics, /^realtime_edge_head_timeouts_total (1\d|[2-9]\d)$/m);
    client.send({ type: "ping", id: "still" });
    assert.equal((await client.next((m) => m.type === "pong", 3000)).id, "still");
    await client.close();
    // A client that finishes its head in time is served.
    const ok = await fetch(`${server.httpUrl}/healthz`);
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    trickling = false;
    for (const c of conns) {
      try {
        c.close();
      } catch {
        // closed by the server
      }
    }
    await server.stop();
  }
});

Deno.test("a request head over 16 KiB is a 431 and the connection is closed", async () => {
  const server = await spawnMain({ JWT_SECRET: SECRET });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(
      encoder.encode(`GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(60_000)}\r\n\r\n`),
    )
      .catch(() => 0);
    const buf = new Uint8Array(256);
    const n = await conn.read(buf);
    assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 431 /);
    assert.equal(await fate(conn, 3000), "closed");
    conn.close();
    await welcomes(server);
  } finally {
    await server.stop();
  }
});

Deno.test("connectionBudget: MAX_CONNECTIONS is lowered only by the fd limit, shared by isolates", () => {
  assert.deepEqual(connectionBudget(10_000, 1, 20_000), {
    maxSockets: 11_000,
    fdLimit: 20_000,
    maxConnections: 10_000,
    clamped: false,
  });
  const small = connectionBudget(10_000, 1, 1024);
  assert.equal(small.maxSockets, 1024 - reservedDescriptors(1024));
  assert.equal(small.maxConnections, Math.floor(small.maxSockets * 0.9));
  assert.equal(small.clamped, true);
  const two = connectionBudget(10_000, 2, 20_000);
  assert.equal(two.maxSockets, Math.floor((20_000 - reservedDescriptors(20_000)) / 2));
  assert.equal(two.clamped, true);
  assert.equal(connectionBudget(500, 1, undefined).maxConnections, 500);
});

for (const engine of ["ws", "deno"]) {
  Deno.test(`WS_ENGINE=${engine}: closed WebSockets leave the socket count (no creeping to the cap)`, async () => {
    await using server = await spawnMain({
      JWT_SECRET: SECRET,
      WS_ENGINE: engine,
      HANDSHAKES_PER_MINUTE_PER_IP: "100000",
    });
    const alice = await mintToken(KEY, { sub: "alice", rooms: ["*"] });
    for (let i = 0; i < 300; i += 10) {
      await Promise.all(Array.from({ length: 10 }, async () => {
        const { client } = await connect(`${server.wsUrl}?token=${alice}`);
        await client.close();
      }));
    }
    const sockets = async () => {
      const text = await (await fetch(`${server.httpUrl}/metrics`, {
        headers: { connection: "close" },
      })).text();
      return Number(/^realtime_edge_sockets (\d+)$/m.exec(text)?.[1]);
    };
    const deadline = performance.now() + 5000;
    let open = await sockets();
    while (open > 2 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      open = await sockets();
    }
    assert.ok(open <= 2, `${open} sockets still counted after 300 closed WebSockets`);
  });
}

Deno.test("ws engine frames every payload length right (7-bit, 16-bit and 64-bit lengths)", async () => {
  await using server = await spawnMain({ JWT_SECRET: SECRET, MAX_MESSAGE_BYTES: "200000" });
  const bob = await mintToken(KEY, { sub: "bob", rooms: ["*"] });
  const { client: sender } = await connect(`${server.wsUrl}?token=${bob}`);
  const { client: receiver } = await connect(`${server.wsUrl}?token=${bob}`);
  for (const c of [sender, receiver]) await join(c, "sizes");
  // ASCII and multi-byte text: the frame length counts UTF-8 bytes, not characters.
  for (const text of ["x".repeat(60), "é".repeat(80), "y".repeat(3000), "ü".repeat(40_000)]) {
    sender.send({ type: "message", room: "sizes", payload: text });
    const got = await receiver.next((m) => m.type === "message", 3000);
    assert.equal(got.payload, text);
  }
  await sender.close();
  await receiver.close();
});
