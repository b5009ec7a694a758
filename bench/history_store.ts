/**
 * Appends per second into one history room, straight on the store (no
 * server, no sockets): memory, Redis with the bus publish in the script, and
 * Deno KV on a local file (appends from one isolate are batched per commit).
 * Reports only; nothing is asserted.
 *
 *     deno run -A bench/history_store.ts [--seconds 2]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { KvHistoryStore } from "../lib/store/history/kv.ts";
import { MemoryHistoryStore } from "../lib/store/history/memory.ts";
import { type RedisAppendOptions, RedisHistoryStore } from "../lib/store/history/redis.ts";
import type { AppendResult, HistoryStore } from "../lib/store/history/types.ts";
import { redisServerPath, startRedis } from "./_redis.ts";

const { values } = parseArgs({ args: Deno.args, options: { seconds: { type: "string" } } });
const seconds = Number(values.seconds ?? "2");
const limits = { size: 1000, ttlMs: 600_000 };
const frame = JSON.stringify({
  type: "message",
  room: "bench",
  payload: { text: "x".repeat(100) },
  from: "user-1",
  ts: 0,
});

interface Row {
  store: string;
  mode: string;
  appendsPerSec: number;
}

/** The Redis store as the Redis broker drives it: the script stores and publishes. */
class PublishingRedisHistoryStore extends RedisHistoryStore {
  override append(room: string, frame: string, options: RedisAppendOptions): Promise<AppendResult> {
    return super.append(room, frame, { ...options, publishAs: "bench" });
  }
}

/** Appends for `seconds` with `inFlight` appends outstanding at any time. */
async function run(store: HistoryStore, inFlight: number, dedupe: boolean): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  let done = 0;
  let next = 0;
  const worker = async () => {
    while (performance.now() < deadline) {
      const n = next++;
      await store.append("bench", frame, {
        limits,
        ...(dedupe ? { dedupe: { key: `u\nbench\n${n}`, windowMs: 300_000 } } : {}),
      });
      done++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return done / ((performance.now() - started) / 1000);
}

async function measure(name: string, store: HistoryStore, rows: Row[]): Promise<void> {
  for (
    const [mode, inFlight, dedupe] of [
      ["1 in flight", 1, false],
      ["64 in flight", 64, false],
      ["64 in flight, dedupe key", 64, true],
    ] as const
  ) {
    rows.push({ store: name, mode, appendsPerSec: Math.round(await run(store, inFlight, dedupe)) });
  }
}

const rows: Row[] = [];
const memory = new MemoryHistoryStore();
try {
  await measure("memory", memory, rows);
} finally {
  await memory.close();
}

const binary = await redisServerPath();
if (binary === undefined) {
  console.warn("redis-server not found: Redis rows skipped");
} else {
  const redis = await startRedis(binary);
  // Each append also publishes, as the Redis broker asks of it.
  const store = new PublishingRedisHistoryStore({ url: redis.url, prefix: "bench" });
  await store.ready(5000);
  try {
    await measure("redis (script publishes)", store, rows);
  } finally {
    await store.close();
    await redis.close();
  }
}

// Deno KV on a local file (SQLite), as `deno serve --parallel` shares it.
const kvDir = await Deno.makeTempDir({ prefix: "bench-kv-history-" });
const kv = await Deno.openKv(`${kvDir}/db.kv`);
const kvStore = new KvHistoryStore({ kv });
try {
  await measure("kv (file)", kvStore, rows);
} finally {
  await kvStore.close();
  kv.close();
  await Deno.remove(kvDir, { recursive: true });
}

console.table(rows);
