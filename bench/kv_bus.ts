/**
 * How the `BUS=kv` watch bus scales with the rooms an isolate holds: a
 * receiving isolate (a Worker) subscribes to 10, 100 and 1,000 rooms on one
 * KV file; this isolate publishes at a fixed rate, round-robin over them.
 * Reports the time to subscribe, and the publish → receive latency. Reports
 * only; nothing is asserted.
 *
 *     deno run -A bench/kv_bus.ts [--seconds 3] [--rate 200]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { KvBus } from "../lib/bus/kv.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { seconds: { type: "string" }, rate: { type: "string" } },
});
const seconds = Number(values.seconds ?? "3");
const rate = Number(values.rate ?? "200");

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

interface Row {
  rooms: number;
  subscribeMs: number;
  sent: number;
  received: number;
  p50Ms: number;
  p99Ms: number;
}

async function measure(rooms: number): Promise<Row> {
  const dir = await Deno.makeTempDir({ prefix: "bench-kv-bus-" });
  const path = `${dir}/db.kv`;
  const kv = await Deno.openKv(path);
  const bus = new KvBus({ kv, instanceId: "publisher" });
  const worker = new Worker(new URL("./_kv_bus_worker.ts", import.meta.url), { type: "module" });
  const replies: MessageEvent[] = [];
  let wake = () => {};
  worker.onmessage = (event) => {
    replies.push(event);
    wake();
  };
  const reply = async () => {
    while (replies.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return replies.shift()!.data;
  };
  try {
    worker.postMessage({ type: "start", path, rooms });
    const { subscribeMs } = await reply();
    const total = Math.round(seconds * rate);
    const started = performance.now();
    for (let n = 0; n < total; n++) {
      const due = started + (n * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      bus.publish(
        `room-${n % rooms}`,
        JSON.stringify({ n, t: performance.timeOrigin + performance.now() }),
      );
    }
    worker.postMessage({ type: "stop" });
    const { latencies } = await reply() as { latencies: number[] };
    latencies.sort((a, b) => a - b);
    return {
      rooms,
      subscribeMs: Math.round(subscribeMs),
      sent: total,
      received: latencies.length,
      p50Ms: Number(percentile(latencies, 0.5).toFixed(2)),
      p99Ms: Number(percentile(latencies, 0.99).toFixed(2)),
    };
  } finally {
    worker.terminate();
    await bus.close();
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const rows: Row[] = [];
for (const rooms of [10, 100, 1000]) rows.push(await measure(rooms));
console.log(`${rate} msg/s for ${seconds} s, round-robin over the rooms`);
console.table(rows);
