/**
 * Across isolates: the latency one bus hop adds. Ours only, two deployments:
 * `deno task start:parallel` with two isolates on the BroadcastChannel bus, and
 * two `deno run main.ts` processes sharing a redis-server the bench starts,
 * and the same two processes on a 3-primary Redis Cluster (sharded pub/sub).
 * Subscribers on the publisher's instance and on the other one are told apart
 * by the `instanceId` of their `welcome`; the difference between the two
 * groups' latencies is the hop.
 *
 * @module
 */
import { describeFailure, log } from "../_alternate.ts";
import {
  redisServerPath,
  type RunningCluster,
  type RunningRedis,
  startRedis,
  startRedisCluster,
} from "../_redis.ts";
import { okRow, type Row, type Section } from "../_report.ts";
import { type RunningServer, SERVERS, type StartOptions, startServer } from "../_servers.ts";
import { mintTokens } from "../_tokens.ts";
import { runAcross } from "../gen/across.ts";
import type { Context } from "./_context.ts";

/** A started multi-instance deployment: where to connect (publisher on the first), and its stop. */
interface Deployment {
  endpoints: RunningServer[];
  close(): Promise<void>;
}

/** One row: how to start its deployment, or why it cannot run here. */
export interface Variant {
  id: string;
  label: string;
  start(): Promise<Deployment>;
}

/** A bus channel no other server on this machine uses (tests may be running alongside). */
function channel(): string {
  return `bench-${crypto.randomUUID()}`;
}

async function startOurs(options: StartOptions): Promise<RunningServer> {
  return await startServer(SERVERS.ours, options);
}

const parallel: Variant = {
  id: "ours_parallel",
  label: "ours, start:parallel, 2 isolates (BroadcastChannel)",
  async start() {
    const server = await startOurs({
      launch: "parallel",
      env: { BUS: "broadcast", BUS_CHANNEL: channel() },
    });
    return { endpoints: [server], close: () => server.close() };
  },
};

/** A deployment on `start:parallel` whose isolates share a KV file in a temp dir. */
function kvVariant(id: string, label: string, env: Record<string, string>): Variant {
  return {
    id,
    label,
    async start() {
      const dir = await Deno.makeTempDir({ prefix: "bench-kv-" });
      const remove = () => Deno.remove(dir, { recursive: true }).catch(() => {});
      try {
        const server = await startOurs({
          launch: "parallel",
          env: { KV_PATH: `${dir}/realtime.kv`, BUS_CHANNEL: channel(), ...env },
        });
        return {
          endpoints: [server],
          close: async () => {
            await server.close();
            await remove();
          },
        };
      } catch (err) {
        await remove();
        throw err;
      }
    },
  };
}

/** The KV rows: the hop with STORE=kv behind BroadcastChannel, and with the KV bus alone. */
export const KV_VARIANTS: readonly Variant[] = [
  kvVariant(
    "ours_parallel_kv_store",
    "ours, --parallel, BUS=broadcast + STORE=kv, history room",
    { BUS: "broadcast", STORE: "kv", HISTORY_SIZE: "1000" },
  ),
  kvVariant(
    "ours_parallel_kv_bus",
    "ours, --parallel, BUS=kv, room without history",
    { BUS: "kv", HISTORY_SIZE: "0" },
  ),
  kvVariant(
    "ours_parallel_kv_bus_history",
    "ours, --parallel, BUS=kv, history room",
    { BUS: "kv", HISTORY_SIZE: "1000" },
  ),
];

const REDIS_ROW = { id: "ours_redis", label: "ours, 2 processes via Redis" } as const;

function redisVariant(binary: string): Variant {
  return {
    ...REDIS_ROW,
    async start() {
      const redis: RunningRedis = await startRedis(binary);
      const env = { BUS: "redis", REDIS_URL: redis.url, BUS_CHANNEL: channel() };
      const nodes = await Promise.allSettled([startOurs({ env }), startOurs({ env })]);
      const started = nodes.flatMap((n) => n.status === "fulfilled" ? [n.value] : []);
      const close = async () => {
        await Promise.all(started.map((s) => s.close()));
        await redis.close();
      };
      const failed = nodes.find((n) => n.status === "rejected");
      if (failed) {
        await close();
        throw failed.reason;
      }
      return { endpoints: started, close };
    },
  };
}

const CLUSTER_ROW = {
  id: "ours_redis_cluster",
  label: "ours, 2 processes via Redis Cluster (3 shards, sharded pub/sub)",
} as const;

function clusterVariant(binary: string): Variant {
  return {
    ...CLUSTER_ROW,
    async start() {
      const cluster: RunningCluster = await startRedisCluster(binary, 3);
      const env = { BUS: "redis", REDIS_CLUSTER_NODES: cluster.nodes, BUS_CHANNEL: channel() };
      const nodes = await Promise.allSettled([startOurs({ env }), startOurs({ env })]);
      const started = nodes.flatMap((n) => n.status === "fulfilled" ? [n.value] : []);
      const close = async () => {
        await Promise.all(started.map((s) => s.close()));
        await cluster.close();
      };
      const failed = nodes.find((n) => n.status === "rejected");
      if (failed) {
        await close();
        throw failed.reason;
      }
      return { endpoints: started, close };
    },
  };
}

/** A row that cannot run here (redis-server missing): skipped, or failed when CI is set. */
export function skippedOrFailed(id: string, label: string, reason: string): Row {
  // CI must not lose this row silently: there, a missing redis-server fails the run.
  const inCi = (Deno.env.get("CI") ?? "") !== "";
  return {
    id,
    label,
    status: inCi ? "failed" : "skipped",
    reason: inCi ? `${reason} (CI is set)` : reason,
    metrics: {},
  };
}

/** Runs the across-isolates scenario; one section. */
export async function isolatesScenario(ctx: Context): Promise<Section[]> {
  const p = ctx.config.isolates;
  const rows: Row[] = [];
  if (ctx.servers.includes("ours")) {
    log(`across isolates: ${p.subscribers} subscribers, ${p.messages} messages at ${p.rate}/s`);
    const redis = await redisServerPath();
    const variants: Variant[] = [parallel, ...KV_VARIANTS];
    if (redis !== undefined) variants.push(redisVariant(redis), clusterVariant(redis));
    rows.push(...await measure(variants, ctx.config.runs, p, await tokensFor(p.subscribers)));
    if (redis === undefined) {
      for (const row of [REDIS_ROW, CLUSTER_ROW]) {
        rows.push(skippedOrFailed(row.id, row.label, "redis-server not installed"));
      }
    }
  }
  return [{
    id: "isolates",
    title: "Across isolates (ours only)",
    description: `1 publisher + ${p.subscribers} subscribers in one room, half on the ` +
      `publisher's instance and half on the other (told apart by \`instanceId\` in \`welcome\`; ` +
      `under \`--parallel\` the kernel places connections, surplus ones are closed and retried). ` +
      `${p.messages} messages at ${p.rate} msg/s (${
        (p.subscribers * p.rate).toLocaleString("en-US")
      } deliveries/s: light, so latency is the path, not a queue). ` +
      `Added per hop = other-instance − same-instance latency, per run. Each deployment is ` +
      `started once and measured in alternating rounds; redis-server on a free loopback port, ` +
      `persistence off.`,
    metrics: [
      { key: "sameP50", label: "same instance p50 ms", digits: 2 },
      { key: "sameP99", label: "same instance p99 ms", digits: 2 },
      { key: "otherP50", label: "other instance p50 ms", digits: 2 },
      { key: "otherP99", label: "other instance p99 ms", digits: 2 },
      { key: "addedP50", label: "added per hop p50 ms", digits: 2 },
      { key: "addedP99", label: "added per hop p99 ms", digits: 2 },
    ],
    rows,
  }];
}

function tokensFor(subscribers: number): Promise<string[]> {
  // Connections the placement closes and retries reuse tokens: ours is
  // started with a per-user limit far above what one run opens.
  return mintTokens(subscribers + 1, { alg: "HS256", subPrefix: "across" });
}

/** Starts every variant, then alternates rounds over them, like the other scenarios. */
async function measure(
  variants: readonly Variant[],
  runs: number,
  p: Context["config"]["isolates"],
  tokens: readonly string[],
): Promise<Row[]> {
  const deployments = new Map<string, Deployment>();
  const failures = new Map<string, string>();
  const results = new Map<string, Record<string, number>[]>(variants.map((v) => [v.id, []]));
  try {
    await Promise.all(variants.map(async (v) => {
      try {
        deployments.set(v.id, await v.start());
      } catch (err) {
        failures.set(v.id, describeFailure(err));
        log(`${v.label}: ${describeFailure(err).split("\n")[0]}`);
      }
    }));
    for (let run = 0; run < runs; run++) {
      for (const v of variants) {
        const deployment = deployments.get(v.id);
        if (!deployment || failures.has(v.id)) continue;
        try {
          const r = await runAcross(deployment.endpoints, p, tokens);
          if (r.lost > 0 || r.errors > 0) {
            throw new Error(`${r.lost} deliveries lost, ${r.errors} error frames`);
          }
          log(
            `  ${v.label}: same p50 ${r.sameP50Ms.toFixed(2)} ms, other p50 ${
              r.otherP50Ms.toFixed(2)
            } ms (${r.attempts} connections to place ${p.subscribers})`,
          );
          results.get(v.id)!.push({
            sameP50: r.sameP50Ms,
            sameP99: r.sameP99Ms,
            otherP50: r.otherP50Ms,
            otherP99: r.otherP99Ms,
            addedP50: r.otherP50Ms - r.sameP50Ms,
            addedP99: r.otherP99Ms - r.sameP99Ms,
          });
        } catch (err) {
          const server = deployment.endpoints.find((s) => s.exited) ?? deployment.endpoints[0];
          failures.set(v.id, `run ${run + 1}: ${describeFailure(err, server)}`);
          log(`${v.label} failed: ${describeFailure(err, server).split("\n")[0]}`);
        }
      }
    }
  } finally {
    await Promise.all([...deployments.values()].map((d) => d.close()));
  }
  return variants.map((v) => {
    const reason = failures.get(v.id);
    if (reason !== undefined) {
      return { id: v.id, label: v.label, status: "failed", reason, metrics: {} };
    }
    return okRow(v.id, v.label, results.get(v.id)!);
  });
}
