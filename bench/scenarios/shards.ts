/**
 * Redis Cluster scaling: history publishes per second with 1, 2 and 3 shards,
 * next to one plain redis-server. Straight on the Redis history store as the
 * Redis broker drives it (one script stores the message and publishes it,
 * `SPUBLISH` on a Cluster), from this process, into many rooms (so they
 * spread over the shards), a window of appends in flight. No server, no
 * sockets: the server's own cost per publish is the history section's.
 *
 * On a small machine the driver (one isolate) and the shards share the same
 * cores, so publishes/s alone flattens; the shards' own CPU time (from /proc)
 * says how far each shard is from its limit: "projected" is the publishes/s
 * at which the busiest shard would use one whole core.
 *
 * @module
 */
import { log } from "../_alternate.ts";
import { cpuMicros } from "../_proc.ts";
import { redisServerPath, startRedis, startRedisCluster } from "../_redis.ts";
import { okRow, type Row, type Section } from "../_report.ts";
import { RedisHistoryStore } from "../../lib/store/history/redis.ts";
import type { RedisTarget } from "../../lib/redis_link.ts";
import type { Context } from "./_context.ts";
import { skippedOrFailed } from "./isolates.ts";

/** Parameters of the shards scenario. */
export interface ShardsParams {
  /** Cluster sizes measured, in primaries. */
  shards: number[];
  /** Rooms published into, round-robin. */
  rooms: number;
  /** Appends in flight. */
  window: number;
  /** Length of one measurement. */
  durationMs: number;
}

const LIMITS = { size: 1000, ttlMs: 600_000 };
const FRAME = JSON.stringify({
  type: "message",
  room: "bench",
  payload: { text: "x".repeat(100) },
  from: "user-1",
  ts: 0,
});

interface Deployment {
  url: RedisTarget;
  pids: number[];
  close(): Promise<void>;
}

/** One measurement: publishes/s and the shards' CPU. */
async function measure(deployment: Deployment, p: ShardsParams): Promise<Record<string, number>> {
  const store = new RedisHistoryStore({
    url: deployment.url,
    prefix: `bench-${crypto.randomUUID()}`,
  });
  try {
    if (!await store.ready(5000)) throw new Error(`Redis not ready: ${store.health().detail}`);
    const rooms = Array.from({ length: p.rooms }, (_, i) => `room-${i}`);
    const cpuBefore = await Promise.all(deployment.pids.map(cpuMicros));
    const started = performance.now();
    const end = started + p.durationMs;
    let next = 0;
    let done = 0;
    await Promise.all(Array.from({ length: p.window }, async () => {
      while (performance.now() < end) {
        const room = rooms[next++ % rooms.length]!;
        await store.append(room, FRAME, { limits: LIMITS, publishAs: "bench" });
        done++;
      }
    }));
    const elapsedMs = performance.now() - started;
    const cpu = (await Promise.all(deployment.pids.map(cpuMicros))).map((c, i) =>
      c - cpuBefore[i]!
    );
    const busiest = Math.max(...cpu) / (elapsedMs * 1000);
    const perSec = done / (elapsedMs / 1000);
    return {
      perSec,
      busiestPct: busiest * 100,
      cpuUs: cpu.reduce((a, b) => a + b, 0) / done,
      projected: busiest > 0 ? perSec / busiest : NaN,
    };
  } finally {
    await store.close();
  }
}

async function startDeployment(binary: string, shards: number | "single"): Promise<Deployment> {
  if (shards === "single") {
    const redis = await startRedis(binary);
    return { url: redis.url, pids: [redis.pid], close: () => redis.close() };
  }
  const cluster = await startRedisCluster(binary, shards);
  return { url: cluster.target, pids: cluster.pids, close: () => cluster.close() };
}

/** Row id of one variant. */
export function shardsRowId(shards: number | "single"): string {
  return shards === "single" ? "redis" : `cluster_${shards}`;
}

/** The rows this scenario reports, in order. */
export function shardsRowIds(p: ShardsParams): string[] {
  return [shardsRowId("single"), ...p.shards.map(shardsRowId)];
}

function label(shards: number | "single"): string {
  return shards === "single"
    ? "one redis-server (PUBLISH)"
    : `Redis Cluster, ${shards} shard${shards === 1 ? "" : "s"} (SPUBLISH)`;
}

/** Runs the shards scenario; one section. */
export async function shardsScenario(ctx: Context): Promise<Section[]> {
  const p = ctx.config.shards;
  const rows: Row[] = [];
  const variants: (number | "single")[] = ["single", ...p.shards];
  const binary = await redisServerPath();
  if (ctx.servers.includes("ours")) {
    for (const shards of variants) {
      const id = shardsRowId(shards);
      if (binary === undefined) {
        rows.push(skippedOrFailed(id, label(shards), "redis-server not installed"));
        continue;
      }
      const deployment = await startDeployment(binary, shards);
      try {
        // A first, unrecorded run: the driver's JIT and the scripts' caches warm up.
        await measure(deployment, { ...p, durationMs: Math.min(p.durationMs, 300) });
        const runs: Record<string, number>[] = [];
        for (let run = 0; run < ctx.config.runs; run++) runs.push(await measure(deployment, p));
        const median = runs.map((r) => r.perSec ?? 0).sort((a, b) => a - b)[runs.length >> 1]!;
        log(`  ${label(shards)}: ${Math.round(median)} publishes/s`);
        rows.push(okRow(id, label(shards), runs));
      } catch (err) {
        rows.push({
          id,
          label: label(shards),
          status: "failed",
          reason: String(err),
          metrics: {},
        });
      } finally {
        await deployment.close();
      }
    }
  }
  return [{
    id: "shards",
    title: "Redis Cluster: history publishes with 1 → 3 shards (store only)",
    description: `The Redis history store's append script (store + publish), from one isolate, ` +
      `${p.window} appends in flight over ${p.rooms} rooms, ${p.durationMs} ms per run; ` +
      `clusters of 1–3 primaries (no replicas) next to one plain redis-server, all on this ` +
      `machine's cores with the driver. "busiest shard CPU" is the busiest redis-server's share ` +
      `of one core; "projected" = publishes/s ÷ that share: where the busiest shard saturates.`,
    metrics: [
      { key: "perSec", label: "publishes/s", digits: 0 },
      { key: "busiestPct", label: "busiest shard CPU %", digits: 0 },
      { key: "cpuUs", label: "Redis CPU µs per publish", digits: 1 },
      { key: "projected", label: "projected publishes/s", digits: 0 },
    ],
    rows,
  }];
}
