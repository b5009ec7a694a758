/**
 * Churn generator for `deno task bench` (scenario `churn`): `count` cycles of
 * connect → welcome → join → joined → publish → own message back → leave →
 * close, `concurrency` at a time, cycle i with token line i of `tokensFile`
 * and room `churn-${i % rooms}`. Node `ws`, in its own process, so the
 * server's CPU and memory are not mixed with the generator's.
 *
 * argv: url tokensFile count concurrency rooms timeoutMs
 * stdout: one JSON line at the end: {cycles, failed, ms, firstError?}
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

// Loaded with require, like idle.mjs: resolved from bench/node/node_modules.
const { WebSocket } = createRequire(import.meta.url)("ws");

const [url, tokensFile, countArg, concurrencyArg, roomsArg, timeoutArg] = process.argv.slice(2);
const count = Number(countArg);
const concurrency = Number(concurrencyArg);
const rooms = Number(roomsArg);
const timeoutMs = Number(timeoutArg);
const tokens = readFileSync(tokensFile, "utf8").split("\n");

/** One cycle; resolves once the socket is closed, rejects on a failure or timeout. */
function cycle(i) {
  return new Promise((resolve, reject) => {
    const room = `churn-${i % rooms}`;
    const ws = new WebSocket(`${url}?token=${encodeURIComponent(tokens[i])}`, {
      perMessageDeflate: false,
    });
    let step = "welcome";
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`cycle ${i} stuck at ${step} after ${timeoutMs} ms`));
    }, timeoutMs);
    ws.on("message", (data) => {
      const text = String(data);
      if (step === "welcome" && text.includes('"welcome"')) {
        step = "joined";
        ws.send(JSON.stringify({ type: "join", room, id: "j" }));
      } else if (step === "joined" && text.includes('"joined"')) {
        step = "message";
        ws.send(JSON.stringify({ type: "message", room, payload: { i } }));
      } else if (step === "message" && text.includes('"message"')) {
        step = "close";
        ws.send(JSON.stringify({ type: "leave", room, id: "l" }));
        ws.close(1000);
      }
    });
    ws.on("close", () => {
      clearTimeout(timer);
      if (step === "close") resolve();
      else reject(new Error(`cycle ${i} closed at ${step}`));
    });
    ws.on("error", () => {});
  });
}

let next = 0;
let failed = 0;
let firstError;
const start = performance.now();
await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
  while (next < count) {
    const i = next++;
    try {
      await cycle(i);
    } catch (err) {
      failed++;
      firstError ??= String(err?.message ?? err);
    }
  }
}));
process.stdout.write(
  JSON.stringify({ cycles: count, failed, ms: performance.now() - start, firstError }) + "\n",
);
