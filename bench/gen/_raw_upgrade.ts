/**
 * A minimal WebSocket handshake over a raw TCP socket, for the handshake
 * scenario. Deno's WebSocket client spends ~0.5 ms of CPU per connection
 * setting itself up, which on 2 cores makes the generator, not the server,
 * the bottleneck; this client costs a fraction of that, so upgrades/s
 * measures the server.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const HEADER_END = "\r\n\r\n";
/** A masked close frame with code 1000 (mask key 0, so the payload reads as-is). */
const CLOSE_FRAME = new Uint8Array([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);

/** An upgraded connection; `close` performs the closing handshake (bounded) and frees the socket. */
export interface RawUpgrade {
  latencyMs: number;
  close(): Promise<void>;
}

/**
 * Opens a TCP connection, sends the upgrade request for `path`, and resolves
 * once `101 Switching Protocols` arrives. Rejects on any other status.
 */
export async function rawUpgrade(
  port: number,
  path: string,
  timeoutMs: number,
): Promise<RawUpgrade> {
  const start = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    await write(
      conn,
      encoder.encode(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
    const buf = new Uint8Array(4096);
    let head = "";
    while (!head.includes(HEADER_END)) {
      const n = await conn.read(buf);
      if (n === null) throw new Error("connection closed during the handshake");
      head += decoder.decode(buf.subarray(0, n));
    }
    if (!head.startsWith("HTTP/1.1 101")) {
      throw new Error(`upgrade refused: ${head.slice(0, head.indexOf("\r\n"))}`);
    }
    const latencyMs = performance.now() - start;
    clearTimeout(timer);
    return {
      latencyMs,
      close: async () => {
        // Close frame, then read until the server hangs up: the server closes
        // first, so TIME_WAIT lands on its side, not on our ephemeral ports.
        const drain = setTimeout(() => conn.close(), 2000);
        try {
          await write(conn, CLOSE_FRAME);
          while (await conn.read(buf) !== null) { /* discard welcome and close frames */ }
        } catch { /* closed by the timer or the server */ }
        clearTimeout(drain);
        try {
          conn.close();
        } catch { /* already closed */ }
      },
    };
  } catch (err) {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* already closed */ }
    throw err;
  }
}

async function write(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) written += await conn.write(data.subarray(written));
}
