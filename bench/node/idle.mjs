/**
 * Idle-connection holder for `deno task bench`. One process holds a slice of
 * the idle connections, opened from several loopback source addresses (a
 * process may hold ~20,000 descriptors; a source address has ~28,000
 * ephemeral ports), answers heartbeats, and reports. Node, because Deno's
 * WebSocket cannot choose a source address. The process lives for the whole
 * scenario, so Node's start-up is not paid per run.
 *
 * Stdin, one JSON command per line:
 *   {cmd:"open", kind:"ws"|"socketio", url, count, offset, tokensFile?,
 *    sources: string[], concurrency, timeoutMs}
 *     → {event:"connected", count, ms} | {event:"failed", message}
 *   {cmd:"check"} → {event:"check", open, dropped}
 *   {cmd:"close"} → closes every connection → {event:"closed"}
 * End of stdin: close everything and exit.
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { createRequire } from "node:module";
import { io } from "socket.io-client";

// Loaded with require: Node resolves it from bench/node/node_modules, while
// `deno check bench/` (whose import map has no such package) leaves it alone.
const { WebSocket } = createRequire(import.meta.url)("ws");

/** @type {{close(): void, gone: Promise<void>}[]} */
let clients = [];
let dropped = 0;
let closing = false;

function report(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

/** Opens one client; resolves on the server's welcome, rejects on close or timeout. */
function openOne(spec, token, localAddress) {
  const { kind, url, timeoutMs } = spec;
  return new Promise((resolve, reject) => {
    let welcomed = false;
    let ended = false;
    let markGone;
    const gone = new Promise((r) => markGone = r);
    const fail = (err) => {
      clearTimeout(timer);
      markGone();
      if (!welcomed) return reject(err);
      // error and close both fire for one loss; count it once.
      if (!ended && !closing) dropped++;
      ended = true;
    };
    const timer = setTimeout(() => fail(new Error(`no welcome in ${timeoutMs} ms`)), timeoutMs);
    const welcome = () => {
      clearTimeout(timer);
      welcomed = true;
      resolve();
    };
    if (kind === "socketio") {
      const socket = io(url, {
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
        localAddress,
        auth: token ? { token } : {},
      });
      clients.push({ close: () => socket.disconnect(), gone });
      socket.on("welcome", welcome);
      socket.on("disconnect", (reason) => fail(new Error(`disconnect: ${reason}`)));
      socket.on("connect_error", (err) => fail(err));
    } else {
      const target = token ? `${url}?token=${encodeURIComponent(token)}` : url;
      const ws = new WebSocket(target, { localAddress, perMessageDeflate: false });
      clients.push({ close: () => ws.close(), gone });
      ws.on("message", (data) => {
        if (!welcomed && String(data).includes('"welcome"')) welcome();
      });
      ws.on("close", (code) => fail(new Error(`closed with ${code}`)));
      ws.on("error", (err) => fail(err));
    }
  });
}

async function open(spec) {
  const { count, offset, tokensFile, sources, concurrency } = spec;
  const tokens = tokensFile
    ? readFileSync(tokensFile, "utf8").split("\n").slice(offset, offset + count)
    : [];
  closing = false;
  dropped = 0;
  const start = performance.now();
  let next = 0;
  let failure;
  const worker = async () => {
    while (failure === undefined && next < count) {
      const i = next++;
      try {
        await openOne(spec, tokens[i], sources[i % sources.length]);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (failure !== undefined) {
    report({ event: "failed", message: String(failure?.message ?? failure) });
  } else report({ event: "connected", count, ms: performance.now() - start });
}

async function closeAll() {
  closing = true;
  for (const c of clients) c.close();
  // Bounded: a server that never answers the close must not hang the bench.
  await Promise.race([
    Promise.all(clients.map((c) => c.gone)),
    new Promise((r) => setTimeout(r, 3000)),
  ]);
  clients = [];
}

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  const command = JSON.parse(line);
  if (command.cmd === "open") await open(command);
  else if (command.cmd === "check") {
    report({ event: "check", open: clients.length - dropped, dropped });
  } else if (command.cmd === "close") {
    await closeAll();
    report({ event: "closed" });
  }
});
lines.on("close", async () => {
  await closeAll();
  process.exit(0);
});
