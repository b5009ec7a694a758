/**
 * History rooms (issue 9), ours only, each beside its control without
 * history measured in the same alternating rounds:
 * - fan-out N=1,000 with a memory history store vs none (server CPU per delivery);
 * - publishes per second into one history room across two nodes on a Redis
 *   store, and end-to-end latency across those nodes;
 * - a reconnect storm: every client of a room drops, messages are published,
 *   every client comes back with `since` and must recover exactly those.
 *
 * @module
 */
import { alternate, type Contender, describeFailure, log } from "../_alternate.ts";
import type { HistoryBenchParams } from "../_config.ts";
import { redisServerPath, type RunningRedis, startRedis } from "../_redis.ts";
import { okRow, type Row, type Section } from "../_report.ts";
import { type RunningServer, SERVERS, startServer } from "../_servers.ts";
import { BENCH_API_KEY, mintTokens } from "../_tokens.ts";
import { runAcross } from "../gen/across.ts";
import { runFanoutSizes } from "../gen/fanout.ts";
import { runPublishes, runStorm } from "../gen/history.ts";
import type { Context } from "./_context.ts";
import { skippedOrFailed } from "./isolates.ts";

/** Row id of the history rows; the control rows are `ours` and `ours_redis`. */
export const OURS_HISTORY = "ours_history";
/** Row id of the Redis history row. */
export const OURS_REDIS_HISTORY = "ours_redis_history";
/** Section ids of this scenario. */
export const HISTORY_SECTIONS = {
  fanout: "history_fanout",
  storm: "history_storm",
  redis: "history_redis",
} as const;

/** One node on the memory store, history on (`size`) or off, with an API key to publish. */
function memoryContenders(size: number): Contender[] {
  const env = (historySize: number) => ({
    HISTORY_SIZE: String(historySize),
    API_KEY: BENCH_API_KEY,
  });
  return [
    {
      id: "ours",
      label: "ours, no history",
      spec: SERVERS.ours,
      startOptions: { env: env(0) },
    },
    {
      id: OURS_HISTORY,
      label: `ours, HISTORY_SIZE=${size} (memory store)`,
      spec: SERVERS.ours,
      startOptions: { env: env(size) },
    },
  ];
}

/** Runs the three history measurements; three sections. */
export async function historyScenario(ctx: Context): Promise<Section[]> {
  const p = ctx.config.history;
  const ours = ctx.servers.includes("ours");
  return [
    fanoutSection(p, ours ? await fanoutRows(ctx, p) : []),
    stormSection(p, ours ? await stormRows(ctx, p) : []),
    redisSection(p, ours ? await redisRows(ctx, p) : []),
  ];
}

async function fanoutRows(ctx: Context, p: HistoryBenchParams): Promise<Row[]> {
  const n = p.fanout.subscribers;
  log(`history fan-out N=${n}, history on vs off`);
  const tokens = await mintTokens(n + 1, { alg: "HS256", subPrefix: "hfan" });
  return await alternate(memoryContenders(p.size), ctx.config.runs, async (c, server) => {
    const [r] = await runFanoutSizes(server, [p.fanout], tokens);
    if (!r) throw new Error("no fan-out result");
    if (r.lost > 0 || r.errors > 0) {
      throw new Error(`${r.lost} deliveries lost, ${r.errors} error frames`);
    }
    log(
      `  ${c.label}: ${r.serverCpuUsPerDelivery.toFixed(1)} µs/delivery, ` +
        `light p99 ${r.lightP99Ms.toFixed(1)} ms`,
    );
    return {
      deliveriesPerSec: r.deliveriesPerSec,
      serverCpuUs: r.serverCpuUsPerDelivery,
      deliveriesPerCpuSec: 1e6 / r.serverCpuUsPerDelivery,
      satP50: r.satP50Ms,
      satP99: r.satP99Ms,
      lightP50: r.lightP50Ms,
      lightP99: r.lightP99Ms,
    };
  });
}

function fanoutSection(p: HistoryBenchParams, rows: Row[]): Section {
  const f = p.fanout;
  return {
    id: HISTORY_SECTIONS.fanout,
    title: `History: fan-out, N=${f.subscribers.toLocaleString("en-US")}, history on vs off`,
    description: `The fan-out measurement (1 publisher + ${f.subscribers} subscribers, ` +
      `${f.messages} saturating messages, ${f.window} in flight; then ${f.lightMessages} at ` +
      `${f.lightRate} msg/s) on two fresh \`deno run main.ts\` processes: HISTORY_SIZE=0, and ` +
      `HISTORY_SIZE=${p.size} on the memory store (every message stored and numbered, frames ` +
      `carry offset and epoch). Server CPU from /proc over the saturated phase.`,
    metrics: [
      { key: "deliveriesPerSec", label: "deliveries/s", digits: 0 },
      { key: "serverCpuUs", label: "server CPU µs/delivery", digits: 1 },
      { key: "deliveriesPerCpuSec", label: "deliveries per server CPU-s", digits: 0 },
      { key: "satP50", label: "saturated p50 ms", digits: 1 },
      { key: "satP99", label: "saturated p99 ms", digits: 1 },
      { key: "lightP50", label: "10 msg/s p50 ms", digits: 1 },
      { key: "lightP99", label: "10 msg/s p99 ms", digits: 1 },
    ],
    rows,
  };
}

async function stormRows(ctx: Context, p: HistoryBenchParams): Promise<Row[]> {
  const s = p.storm;
  log(`history reconnect storm: ${s.clients} clients, ${s.missed} missed messages`);
  const tokens = await mintTokens(s.clients, { alg: "HS256", subPrefix: "storm" });
  let peakSpansLife = false;
  const rows = await alternate(memoryContenders(p.size), ctx.config.runs, async (c, server) => {
    const history = c.id === OURS_HISTORY;
    const r = await runStorm(server, s, tokens, { apiKey: BENCH_API_KEY, history });
    if (r.wrong > 0) throw new Error(`${r.wrong} problems; first: ${r.firstWrong}`);
    if (!r.peakIsStormOnly) peakSpansLife = true;
    const mb = 1024 * 1024;
    log(
      `  ${c.label}: all back in ${r.recoveredMs.toFixed(0)} ms, ` +
        `${r.serverCpuMs.toFixed(0)} ms server CPU, peak RSS ${
          (r.peakRssBytes / mb).toFixed(0)
        } MB`,
    );
    return {
      recoveredMs: r.recoveredMs,
      clientP50: r.clientP50Ms,
      clientP99: r.clientP99Ms,
      serverCpuMs: r.serverCpuMs,
      cpuUsPerClient: (r.serverCpuMs * 1000) / s.clients,
      peakRssMb: r.peakRssBytes / mb,
      rssGrowthMb: (r.peakRssBytes - r.rssBeforeBytes) / mb,
    };
  });
  if (!peakSpansLife) return rows;
  const note = "peak RSS spans the process's life (the kernel refused to reset VmHWM)";
  return rows.map((r) => ({ ...r, notes: [...(r.notes ?? []), note] }));
}

function stormSection(p: HistoryBenchParams, rows: Row[]): Section {
  const s = p.storm;
  return {
    id: HISTORY_SECTIONS.storm,
    title: `History: reconnect storm, ${s.clients.toLocaleString("en-US")} clients ` +
      `each missing ${s.missed}`,
    description: `${s.clients} clients (one user each) join one fresh room on one node and all ` +
      `disconnect; ${s.missed} messages are published to the empty room through ` +
      `\`POST /api/publish\`; then all reconnect (${s.concurrency} handshakes in flight, same ` +
      `tokens) and rejoin, the history row with \`since\` = the position of its first \`joined\`. ` +
      `Done when every client has \`joined\` with \`recovered: true, missed: ${s.missed}\` and ` +
      `then exactly those ${s.missed} messages in offset order (checked; a wrong or missing ` +
      `message fails the row). The control row rejoins a room without history (nothing to ` +
      `recover, done at \`joined\`): the difference is what recovery costs. Server CPU from /proc ` +
      `over the storm (handshakes included); peak RSS = VmHWM, reset just before the storm.`,
    metrics: [
      { key: "recoveredMs", label: "all recovered ms", digits: 0 },
      { key: "clientP50", label: "per client p50 ms", digits: 0 },
      { key: "clientP99", label: "per client p99 ms", digits: 0 },
      { key: "serverCpuMs", label: "server CPU ms", digits: 0 },
      { key: "cpuUsPerClient", label: "server CPU µs/client", digits: 0 },
      { key: "peakRssMb", label: "peak RSS MB", digits: 1 },
      { key: "rssGrowthMb", label: "RSS growth MB", digits: 1 },
    ],
    rows,
  };
}

/** Two nodes on one Redis, with or without history. */
interface RedisDeployment {
  id: string;
  label: string;
  history: boolean;
  nodes: RunningServer[];
}

async function redisRows(ctx: Context, p: HistoryBenchParams): Promise<Row[]> {
  const variants = [
    { id: "ours_redis", label: "ours, 2 processes via Redis, no history", history: false },
    {
      id: OURS_REDIS_HISTORY,
      label: `ours, 2 processes via Redis, HISTORY_SIZE=${p.size} (Redis store)`,
      history: true,
    },
  ];
  const binary = await redisServerPath();
  if (binary === undefined) {
    return variants.map((v) => skippedOrFailed(v.id, v.label, "redis-server not installed"));
  }
  log(
    `history on Redis: ${p.publishes.messages} saturated publishes, then ` +
      `${p.latency.messages} at ${p.latency.rate}/s to ${p.latency.subscribers} subscribers`,
  );
  const tokens = await mintTokens(Math.max(p.latency.subscribers + 1, 4), {
    alg: "HS256",
    subPrefix: "hredis",
  });
  // One redis-server for both deployments, each on its own channel: rounds
  // alternate, so only one of them is busy at a time.
  let redis: RunningRedis;
  try {
    redis = await startRedis(binary);
  } catch (err) {
    return variants.map((v) => ({
      id: v.id,
      label: v.label,
      status: "failed" as const,
      reason: describeFailure(err),
      metrics: {},
    }));
  }
  const deployments: RedisDeployment[] = [];
  const failures = new Map<string, string>();
  const results = new Map<string, Record<string, number>[]>(variants.map((v) => [v.id, []]));
  try {
    await Promise.all(variants.map(async (v) => {
      const env = {
        BUS: "redis",
        REDIS_URL: redis.url,
        BUS_CHANNEL: `bench-${crypto.randomUUID()}`,
        HISTORY_SIZE: v.history ? String(p.size) : "0",
      };
      const started = await Promise.allSettled([
        startServer(SERVERS.ours, { env }),
        startServer(SERVERS.ours, { env }),
      ]);
      const nodes = started.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
      const failed = started.find((s) => s.status === "rejected");
      if (failed) {
        await Promise.all(nodes.map((n) => n.close()));
        failures.set(v.id, describeFailure(failed.reason));
        log(`${v.label}: ${describeFailure(failed.reason).split("\n")[0]}`);
        return;
      }
      deployments.push({ ...v, nodes });
    }));
    // Report order, whatever order they started in.
    deployments.sort((a, b) => Number(a.history) - Number(b.history));
    for (let run = 0; run < ctx.config.runs; run++) {
      for (const d of deployments) {
        if (failures.has(d.id)) continue;
        try {
          results.get(d.id)!.push(await measureRedis(d, p, tokens, redis.pid));
        } catch (err) {
          const node = d.nodes.find((n) => n.exited) ?? d.nodes[0];
          failures.set(d.id, `run ${run + 1}: ${describeFailure(err, node)}`);
          log(`${d.label} failed: ${describeFailure(err, node).split("\n")[0]}`);
        }
      }
    }
  } finally {
    await Promise.all(deployments.flatMap((d) => d.nodes.map((n) => n.close())));
    await redis.close();
  }
  return variants.map((v) => {
    const reason = failures.get(v.id);
    if (reason !== undefined) {
      return { id: v.id, label: v.label, status: "failed", reason, metrics: {} };
    }
    return okRow(v.id, v.label, results.get(v.id)!);
  });
}

async function measureRedis(
  d: RedisDeployment,
  p: HistoryBenchParams,
  tokens: readonly string[],
  redisPid: number,
): Promise<Record<string, number>> {
  const pub = await runPublishes(d.nodes, p.publishes, tokens, {
    pids: d.nodes.map((n) => n.pid),
    redisPid,
    history: d.history,
  });
  if (pub.lost > 0 || pub.disorder > 0 || pub.errors > 0) {
    throw new Error(
      `publishing: ${pub.lost} deliveries lost, ${pub.disorder} out of order, ` +
        `${pub.errors} error frames`,
    );
  }
  const lat = await runAcross(d.nodes, p.latency, tokens);
  if (lat.lost > 0 || lat.errors > 0) {
    throw new Error(`latency: ${lat.lost} deliveries lost, ${lat.errors} error frames`);
  }
  log(
    `  ${d.label}: ${pub.publishesPerSec.toFixed(0)} publishes/s, ` +
      `other-node p50 ${lat.otherP50Ms.toFixed(2)} ms, p99 ${lat.otherP99Ms.toFixed(2)} ms`,
  );
  return {
    publishesPerSec: pub.publishesPerSec,
    serverCpuUs: pub.serverCpuUsPerPublish,
    redisCpuUs: pub.redisCpuUsPerPublish,
    sameP50: lat.sameP50Ms,
    sameP99: lat.sameP99Ms,
    otherP50: lat.otherP50Ms,
    otherP99: lat.otherP99Ms,
  };
}

function redisSection(p: HistoryBenchParams, rows: Row[]): Section {
  const { publishes: pub, latency: lat } = p;
  return {
    id: HISTORY_SECTIONS.redis,
    title: "History: one room across two nodes on Redis",
    description: `Two \`deno run main.ts\` processes with BUS=redis on one redis-server the ` +
      `bench starts (persistence off); the history row adds HISTORY_SIZE=${p.size}, so the ` +
      `Redis store numbers every message (one Lua script: dedupe, offset, XADD, EXPIRE, ` +
      `PUBLISH). Saturated: one publisher and one subscriber on each node, ${pub.messages} ` +
      `messages (each with an \`id\`, so deduplicated) with ${pub.window} in flight per ` +
      `publisher, paced on the publisher receiving its own message back; publishes/s = ` +
      `messages / (first publish → last delivery to all 4 members); every member's offsets are ` +
      `checked to go up by exactly 1 and each publisher's order kept. Server CPU = both nodes ` +
      `per publish. Latency: the across-isolates measurement (1 publisher on the first node, ` +
      `${lat.subscribers} subscribers split over both, ${lat.messages} messages at ${lat.rate} ` +
      `msg/s), payload timestamp to receipt.`,
    metrics: [
      { key: "publishesPerSec", label: "publishes/s", digits: 0 },
      { key: "serverCpuUs", label: "nodes CPU µs/publish", digits: 0 },
      { key: "redisCpuUs", label: "redis CPU µs/publish", digits: 0 },
      { key: "sameP50", label: "same node p50 ms", digits: 2 },
      { key: "sameP99", label: "same node p99 ms", digits: 2 },
      { key: "otherP50", label: "other node p50 ms", digits: 2 },
      { key: "otherP99", label: "other node p99 ms", digits: 2 },
    ],
    rows,
  };
}
