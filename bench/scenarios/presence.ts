/**
 * Presence storm (ours only): a crowd joins one presence room within a few
 * seconds, then leaves. Reports frames per existing member (should follow
 * the storm's duration / `PRESENCE_DIFF_MS`, or one per second above
 * `PRESENCE_MAX_MEMBERS`, never the crowd's size), server CPU, and the time
 * until everyone reads the final count; on one isolate and on two nodes over
 * Redis. Reported, never asserted.
 *
 * @module
 */
import { describeFailure, log } from "../_alternate.ts";
import { redisServerPath, type RunningRedis, startRedis } from "../_redis.ts";
import { okRow, type Row, type Section } from "../_report.ts";
import { type RunningServer, SERVERS, startServer } from "../_servers.ts";
import { mintTokens } from "../_tokens.ts";
import { runPresenceStorm } from "../gen/presence.ts";
import type { Context } from "./_context.ts";

interface Deployment {
  endpoints: RunningServer[];
  close(): Promise<void>;
}

interface Variant {
  id: string;
  label: string;
  start(): Promise<Deployment>;
}

const PRESENCE_ENV = { PRESENCE: "1", LOG_LEVEL: "warning" };

const oneIsolate: Variant = {
  id: "ours",
  label: "ours, one isolate",
  async start() {
    const server = await startServer(SERVERS.ours, { env: { ...PRESENCE_ENV, BUS: "memory" } });
    return { endpoints: [server], close: () => server.close() };
  },
};

/** The same storm below the large-room limit: every diff names its users. */
const namedDiffs: Variant = {
  id: "ours_named",
  label: "ours, one isolate, PRESENCE_MAX_MEMBERS=5000 (named diffs)",
  async start() {
    const server = await startServer(SERVERS.ours, {
      env: { ...PRESENCE_ENV, BUS: "memory", PRESENCE_MAX_MEMBERS: "5000" },
    });
    return { endpoints: [server], close: () => server.close() };
  },
};

function redisVariant(binary: string): Variant {
  return {
    id: "ours_redis",
    label: "ours, 2 nodes via Redis",
    async start() {
      const redis: RunningRedis = await startRedis(binary);
      const env = {
        ...PRESENCE_ENV,
        BUS: "redis",
        REDIS_URL: redis.url,
        BUS_CHANNEL: `bench-${crypto.randomUUID()}`,
      };
      const nodes = await Promise.allSettled([
        startServer(SERVERS.ours, { env }),
        startServer(SERVERS.ours, { env }),
      ]);
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

/** Runs the presence storm scenario; one section. */
export async function presenceScenario(ctx: Context): Promise<Section[]> {
  const p = ctx.config.presence;
  const rows: Row[] = [];
  if (ctx.servers.includes("ours")) {
    log(`presence storm: ${p.storm} joins over ${p.spreadMs} ms, ${p.existing} members watching`);
    const variants: Variant[] = [oneIsolate, namedDiffs];
    const redis = await redisServerPath();
    if (redis !== undefined) variants.push(redisVariant(redis));
    const tokens = await mintTokens(p.existing + p.storm, { alg: "HS256", subPrefix: "presence" });
    for (const v of variants) {
      let deployment: Deployment | undefined;
      try {
        deployment = await v.start();
        const runs: Record<string, number>[] = [];
        for (let run = 0; run < ctx.config.runs; run++) {
          const r = await runPresenceStorm(
            deployment.endpoints,
            deployment.endpoints.map((s) => s.pid),
            p,
            tokens,
            `storm-${run}`,
          );
          if (r.errors > 0) throw new Error(`${r.errors} error frames`);
          log(
            `  ${v.label}: ${r.joinFramesPerMember.toFixed(1)} frames/member, all at ${
              p.existing + p.storm
            } after ${r.joinConvergeMs.toFixed(0)} ms, ${r.serverCpuMs.toFixed(0)} ms CPU`,
          );
          runs.push({ ...r });
        }
        rows.push(okRow(v.id, v.label, runs.map(({ errors: _, ...m }) => m)));
      } catch (err) {
        rows.push({
          id: v.id,
          label: v.label,
          status: "failed",
          reason: describeFailure(err, deployment?.endpoints.find((s) => s.exited)),
          metrics: {},
        });
      } finally {
        await deployment?.close();
      }
    }
    if (redis === undefined) {
      rows.push({
        id: "ours_redis",
        label: "ours, 2 nodes via Redis",
        status: "skipped",
        reason: "redis-server not installed",
        metrics: {},
      });
    }
  }
  return [{
    id: "presence",
    title: `Presence storm, ${p.storm.toLocaleString("en-US")} joins (ours only)`,
    description: `${p.existing} members sit in one presence room (PRESENCE=1, default ` +
      `PRESENCE_DIFF_MS=250 and PRESENCE_MAX_MEMBERS=1000); ${p.storm} more connections, one ` +
      `user each, join it spread over ${p.spreadMs} ms, then leave the same way. Frames per ` +
      `member: presence frames each existing member received during the storm (and ${p.settleMs} ms ` +
      `after it); below the limit a diff per 250 ms window names every user who came. Converge: from the first join until every connection read the final count (leave: ` +
      `every member). Server CPU over both storms, both nodes summed for Redis.`,
    metrics: [
      { key: "joinFramesPerMember", label: "join: frames/member", digits: 1 },
      { key: "joinConvergeMs", label: "join: all converged ms", digits: 0 },
      { key: "leaveFramesPerMember", label: "leave: frames/member", digits: 1 },
      { key: "leaveConvergeMs", label: "leave: all converged ms", digits: 0 },
      { key: "serverCpuMs", label: "server CPU ms", digits: 0 },
    ],
    rows,
  }];
}
