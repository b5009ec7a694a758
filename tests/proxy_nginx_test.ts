/**
 * Issue 15, item 2: `Deno.serve` never times out an unfinished request head,
 * so the README sends production traffic through a proxy that does. This runs
 * examples/proxy/nginx.conf as shipped (only its two ports replaced) in front
 * of a real server and checks that it closes a half-request and still passes
 * WebSockets, and that too many connections from one address get 503.
 *
 * @module
 */
import assert from "node:assert/strict";
import { mintToken } from "../lib/dev.ts";
import { freePort, spawnMain } from "./_process.ts";
import { connect, sleep } from "./_helpers.ts";
import { findProxyBinary, halfRequestOpenMs, startProxyProcess } from "./_proxy.ts";

const CONF = new URL("../examples/proxy/nginx.conf", import.meta.url);
const nginx = findProxyBinary("nginx");

async function startNginx(listen: number, upstream: number) {
  const conf = (await Deno.readTextFile(CONF))
    .replace("listen 127.0.0.1:8080;", `listen 127.0.0.1:${listen};`)
    .replace("proxy_pass http://127.0.0.1:8000;", `proxy_pass http://127.0.0.1:${upstream};`);
  assert.ok(conf.includes(String(listen)) && conf.includes(String(upstream)));
  return await startProxyProcess(nginx.path, {
    listen,
    files: { "nginx.conf": conf },
    args: (dir) => [
      "-p",
      dir,
      "-c",
      `${dir}/nginx.conf`,
      "-g",
      `daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;`,
    ],
  });
}

Deno.test({
  name: "nginx as shipped closes an unfinished request head and passes WebSockets",
  ignore: nginx.skip,
}, async () => {
  const secret = "n".repeat(40);
  await using server = await spawnMain({ JWT_SECRET: secret });
  const { port } = server;
  const listen = freePort();
  await using _nginx = await startNginx(listen, port);
  // Half a request head, then silence: nginx must close it (client_header_timeout 10 s).
  const { ms } = await halfRequestOpenMs(listen);
  assert.ok(ms < 15_000, `half-request open for ${Math.round(ms)} ms`);
  // A WebSocket still goes through.
  const jwt = await mintToken(new TextEncoder().encode(secret), { sub: "alice", rooms: ["*"] });
  const { client, welcome } = await connect(`ws://127.0.0.1:${listen}/ws?token=${jwt}`);
  assert.equal(welcome.type, "welcome");
  await client.close();
  // Past 50 connections from one address, nginx answers 503 itself.
  const idle: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 50; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: listen });
      await conn.write(
        new TextEncoder().encode(
          "POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
        ),
      );
      idle.push(conn);
    }
    await sleep(300);
    const over = await fetch(`http://127.0.0.1:${listen}/healthz`);
    assert.equal(over.status, 503);
    await over.body?.cancel();
  } finally {
    for (const conn of idle) conn.close();
  }
});
