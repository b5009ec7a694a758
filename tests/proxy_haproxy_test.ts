/**
 * Issue 15, item 2, the HAProxy twin of proxy_nginx_test.ts: runs
 * examples/proxy/haproxy.cfg as shipped (only its two ports replaced) in front
 * of a real server with `TRUST_PROXY=1` and checks that it closes a
 * half-request after its 10 s `timeout http-request`, passes a WebSocket that
 * chats, hands the client's address to the server in `X-Forwarded-For`, and
 * answers the 51st concurrent connection from one address with 503.
 *
 * Loopback is 127.0.0.0/8 on Linux: connecting from 127.0.0.2 gives a second
 * client address, which the server can only learn from `X-Forwarded-For`
 * (HAProxy itself connects from 127.0.0.1).
 *
 * @module
 */
import assert from "node:assert/strict";
import net from "node:net";
import { mintToken } from "../lib/dev.ts";
import { freePort, spawnMain } from "./_process.ts";
import { connect, eventually, join, sleep } from "./_helpers.ts";
import { findProxyBinary, halfRequestOpenMs, startProxyProcess } from "./_proxy.ts";

const CONF = new URL("../examples/proxy/haproxy.cfg", import.meta.url);
const haproxy = findProxyBinary("haproxy");
const OTHER_ADDRESS = "127.0.0.2";

async function startHaproxy(listen: number, upstream: number) {
  const shipped = await Deno.readTextFile(CONF);
  // The test runs the real timeout, so the shipped value is the one checked.
  assert.match(shipped, /^\s*timeout http-request 10s$/m);
  const conf = shipped
    .replace("bind 127.0.0.1:8080\n", `bind 127.0.0.1:${listen}\n`)
    .replace("server realtime 127.0.0.1:8000\n", `server realtime 127.0.0.1:${upstream}\n`);
  assert.ok(conf.includes(`:${listen}\n`) && conf.includes(`:${upstream}\n`));
  return await startProxyProcess(haproxy.path, {
    listen,
    files: { "haproxy.cfg": conf },
    // -db: foreground, no daemon; -Ws would need a service manager.
    args: (dir) => ["-db", "-f", `${dir}/haproxy.cfg`],
  });
}

/**
 * Writes `request` from `localAddress` and resolves with everything read
 * until the peer closes, or until the head is complete when `headOnly`.
 */
function rawRequest(
  port: number,
  localAddress: string,
  request: string,
  headOnly = false,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress });
    let text = "";
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(request));
    socket.on("data", (chunk: string) => {
      text += chunk;
      if (headOnly && text.includes("\r\n\r\n")) socket.destroy();
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(text));
  });
}

/** The status line's code of a GET /healthz sent from `localAddress`. */
async function healthStatus(port: number, localAddress: string): Promise<number> {
  const text = await rawRequest(
    port,
    localAddress,
    "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  );
  return Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0);
}

/** The `ip` of every `connect` audit record in the server's JSON log. */
function connectAddresses(output: string): string[] {
  const ips: string[] = [];
  for (const line of output.split("\n")) {
    if (!line.includes('"event":"connect"')) continue;
    const record = JSON.parse(line) as { ip?: unknown };
    if (typeof record.ip === "string") ips.push(record.ip);
  }
  return ips;
}

Deno.test({
  name: "HAProxy as shipped closes an unfinished request head, passes WebSockets and XFF, caps 50",
  ignore: haproxy.skip,
}, async () => {
  const secret = "h".repeat(40);
  await using server = await spawnMain({
    JWT_SECRET: secret,
    TRUST_PROXY: "1",
    LOG_LEVEL: "info",
  });
  const listen = freePort();
  await using _haproxy = await startHaproxy(listen, server.port);
  const key = new TextEncoder().encode(secret);
  // Half a request head, then silence: HAProxy answers 408 and closes after 10 s.
  const half = await halfRequestOpenMs(listen);
  assert.ok(
    half.ms > 9_000 && half.ms < 12_000,
    `half-request open for ${Math.round(half.ms)} ms`,
  );
  assert.match(half.reply, /^HTTP\/1\.1 408 /);

  // Two WebSockets through the proxy chat in a room.
  const alice = await connect(
    `ws://127.0.0.1:${listen}/ws?token=${await mintToken(key, { sub: "alice", rooms: ["*"] })}`,
  );
  const bob = await connect(
    `ws://127.0.0.1:${listen}/ws?token=${await mintToken(key, { sub: "bob", rooms: ["*"] })}`,
  );
  try {
    assert.equal(alice.welcome.type, "welcome");
    assert.equal(bob.welcome.userId, "bob");
    await join(alice.client, "lobby");
    await join(bob.client, "lobby");
    const heard = bob.client.nextOf("message");
    const ack = await alice.client.request({
      type: "message",
      room: "lobby",
      payload: { text: "hi through haproxy" },
      id: "m1",
    });
    assert.equal(ack.type, "ack");
    const message = await heard;
    assert.equal(message.from, "alice");
    assert.deepEqual(message.payload, { text: "hi through haproxy" });
  } finally {
    await alice.client.close();
    await bob.client.close();
  }

  // X-Forwarded-For: a handshake from 127.0.0.2 with a forged header is audited as 127.0.0.2.
  const jwt = await mintToken(key, { sub: "carol", rooms: ["*"] });
  const upgraded = await rawRequest(
    listen,
    OTHER_ADDRESS,
    `GET /ws?token=${jwt} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      "X-Forwarded-For: 203.0.113.9\r\n\r\n",
    true,
  );
  assert.match(upgraded, /^HTTP\/1\.1 101 /);
  await eventually(
    () => connectAddresses(server.output()).includes(OTHER_ADDRESS),
    5000,
    "the forwarded address in the connect audit record",
  );
  assert.ok(!connectAddresses(server.output()).includes("203.0.113.9"));

  // 50 half-requests held from 127.0.0.1 (HAProxy counts a connection when it accepts it):
  // the 51st from that address gets 503, another address still gets through.
  const held: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 50; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: listen });
      await conn.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
      held.push(conn);
    }
    await sleep(300);
    assert.equal(await healthStatus(listen, "127.0.0.1"), 503);
    assert.equal(await healthStatus(listen, OTHER_ADDRESS), 200);
  } finally {
    for (const conn of held) conn.close();
  }
  await eventually(
    async () => await healthStatus(listen, "127.0.0.1") === 200,
    5000,
    "200 again once the held connections are closed",
  );
});
