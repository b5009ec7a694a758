/**
 * Issue 15, item 1: a text message sent as continuation frames is bounded by
 * nothing in Deno's WebSocket (each frame is checked, the message is not).
 * Past V8's string limit (~512 MiB) the runtime throws in its WebSocket
 * event loop; without the process-wide guard in main.ts that unhandled
 * rejection ended the process and dropped every client.
 *
 * What this proves: the process survives 600 MiB of fragments and keeps
 * serving. What it does not: the memory bound (the message is still read up
 * to the string limit; see the README's security notes).
 *
 * @module
 */
import assert from "node:assert/strict";
import { mintToken } from "../lib/dev.ts";
import { spawnMain } from "./_process.ts";
import { connect, rawWebSocket } from "./_helpers.ts";

const CHUNK = 4 * 1024 * 1024;

/** One unmasked-by-zero client frame header: FIN as given, opcode text for the first. */
function frameHeader(first: boolean, fin: boolean): Uint8Array {
  const head = new Uint8Array(14);
  head[0] = (fin ? 0x80 : 0) | (first ? 0x1 : 0x0);
  head[1] = 0x80 | 127;
  new DataView(head.buffer).setBigUint64(2, BigInt(CHUNK));
  return head; // mask key 0: the payload goes as is
}

Deno.test("600 MiB of fragments on one connection do not end the process", async () => {
  const secret = "f".repeat(40);
  const server = await spawnMain({ JWT_SECRET: secret });
  const { port } = server;
  const key = new TextEncoder().encode(secret);
  try {
    const attacker = await rawWebSocket(
      port,
      `/ws?token=${await mintToken(key, { sub: "mallory" })}`,
    );
    const payload = new Uint8Array(CHUNK).fill(0x61);
    const total = 600 * 1024 * 1024;
    const deadline = performance.now() + 60_000;
    let sent = 0;
    try {
      while (sent < total && performance.now() < deadline) {
        await attacker.write(frameHeader(sent === 0, sent + CHUNK >= total));
        for (let off = 0; off < CHUNK;) off += await attacker.write(payload.subarray(off));
        sent += CHUNK;
      }
    } catch {
      // The server may drop the attacker: that is allowed.
    } finally {
      attacker.close();
    }
    assert.ok(sent > 520 * 1024 * 1024, `only ${sent >> 20} MiB went out`);
    // Give the runtime time to fail on the string it cannot build.
    await new Promise((r) => setTimeout(r, 2000));
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200, server.output());
    await health.body?.cancel();
    const alice = await mintToken(key, { sub: "alice", rooms: ["*"] });
    const { client, welcome } = await connect(`ws://127.0.0.1:${port}/ws?token=${alice}`);
    try {
      assert.equal(welcome.type, "welcome");
    } finally {
      await client.close();
    }
  } finally {
    const status = await server.stop();
    assert.equal(status.signal, null, `killed by ${status.signal}: ${server.output()}`);
  }
});
