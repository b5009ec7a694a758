/**
 * API request bodies have a deadline: a client that sends an authenticated
 * head and then trickles (or never finishes) its body gets `408` and a
 * closed connection, and cannot hold a SIGTERM hostage.
 *
 * @module
 */
import assert from "node:assert/strict";
import { mintToken } from "../lib/dev.ts";
import { sleep, startServer } from "./_helpers.ts";
import { spawnMain } from "./_process.ts";

const API_KEY = "k".repeat(40);
const encoder = new TextEncoder();

/** Writes an authenticated request head announcing `length` body bytes, then `sent` of them. */
async function stuckRequest(
  port: number,
  path: string,
  auth: string,
  length: number,
  sent: string,
): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const head = `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n` +
    `authorization: Bearer ${auth}\r\ncontent-type: application/json\r\n` +
    `content-length: ${length}\r\n\r\n`;
  await conn.write(encoder.encode(head + sent));
  return conn;
}

/** Reads one complete answer (head and `Content-Length` body), or what came within `ms`; closes. */
async function readAnswer(conn: Deno.TcpConn, ms: number): Promise<string> {
  const buf = new Uint8Array(4096);
  let text = "";
  const timer = setTimeout(() => conn.close(), ms);
  try {
    for (;;) {
      const end = text.indexOf("\r\n\r\n");
      const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? NaN);
      if (end !== -1 && text.length >= end + 4 + length) return text;
      const n = await conn.read(buf);
      if (n === null) return text;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
  } catch {
    return text;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Closed by the timer.
    }
  }
}

Deno.test("SIGTERM exits within 10 s while authenticated API bodies are unfinished", async () => {
  const secret = "s".repeat(40);
  await using server = await spawnMain({ JWT_SECRET: secret, API_KEY }, { stopTimeoutMs: 20_000 });
  const { port } = server;
  const conns: Deno.TcpConn[] = [];
  try {
    conns.push(await stuckRequest(port, "/api/publish", API_KEY, 1000, '{"room":"r",'));
    conns.push(await stuckRequest(port, "/api/revoke", API_KEY, 1000, '{"userId":'));
    // /ticket ignores its body, but its connection still waits for the rest.
    const jwt = await mintToken(new TextEncoder().encode(secret), { sub: "alice" });
    conns.push(await stuckRequest(port, "/ticket", jwt, 1000, "{"));
    // Let the handlers pass authorization and start waiting for the rest.
    await sleep(300);
    const started = performance.now();
    const status = await server.stop();
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 10_000, `exited after ${Math.round(elapsed)} ms`);
    assert.equal(status.signal, null, `killed by ${status.signal}: ${server.output()}`);
    assert.equal(status.code, 0, server.output());
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // Closed by the test already.
      }
    }
  }
});

Deno.test("a body slower than BODY_TIMEOUT_MS gets 408 with Connection: close", async () => {
  await using ts = await startServer({ API_KEY, BODY_TIMEOUT_MS: "500" });
  for (const path of ["/api/publish", "/api/revoke"]) {
    const conn = await stuckRequest(ts.port, path, API_KEY, 100, '{"room"');
    const started = performance.now();
    const answer = await readAnswer(conn, 5000);
    const elapsed = performance.now() - started;
    assert.match(answer, /^HTTP\/1\.1 408 /, `${path}: ${answer}`);
    assert.match(answer, /\r\nconnection: close\r\n/i);
    assert.match(answer, /"code":"request_timeout"/);
    assert.ok(elapsed >= 400 && elapsed < 3000, `${path} answered after ${elapsed} ms`);
  }
  // A trickle that keeps sending still hits the deadline: it bounds the whole body.
  const trickle = await stuckRequest(ts.port, "/api/publish", API_KEY, 100, "{");
  const dripping = setInterval(() => trickle.write(encoder.encode(" ")).catch(() => {}), 100);
  try {
    assert.match(await readAnswer(trickle, 5000), /^HTTP\/1\.1 408 /);
  } finally {
    clearInterval(dripping);
  }
  const ok = await fetch(`${ts.httpUrl}/api/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify({ room: "r", payload: 1 }),
  });
  assert.equal(ok.status, 202, "a body on time is served as before");
  await ok.body?.cancel();
});
