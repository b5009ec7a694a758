/**
 * Post-churn memory (`--scenarios=churn`): a fresh server takes `cycles` connect → join → publish
 * → leave → close cycles (every cycle a new user, a distinct token), and its
 * RSS is read before and a second after. Ours and bare Deno only, each
 * round on fresh processes, rounds alternating; the generator is Node `ws`
 * in its own process (bench/node/churn.mjs).
 *
 * @module
 */
import { describeFailure, log } from "../_alternate.ts";
import { ensureNodePeers } from "../_node_peers.ts";
import { cpuMicros, rssBytes } from "../_proc.ts";
import { okRow, type Row, type Section } from "../_report.ts";
import { type RunningServer, type ServerId, SERVERS, startServer } from "../_servers.ts";
import { mintTokens } from "../_tokens.ts";
import type { Context } from "./_context.ts";

const CHURN_SCRIPT = new URL("../node/churn.mjs", import.meta.url).pathname;
const RESULTS_DIR = new URL("../results/", import.meta.url).pathname;

/** Section id of the churn scenario. */
export const CHURN_SECTION = "churn";

/** Sizes: the 40,000 cycles in a full run, 2 alternating rounds (~2 minutes on 2 cores). */
const PARAMS = {
  full: { cycles: 40_000, rounds: 2, concurrency: 64, rooms: 100 },
  quick: { cycles: 1_000, rounds: 1, concurrency: 16, rooms: 10 },
} as const;

/** Servers compared: the target is against bare Deno. */
const COMPARED: readonly ServerId[] = ["ours", "bare_deno"];

const SETTLE_MS = 1000;

async function churnOnce(
  server: RunningServer,
  tokensFile: string,
  p: (typeof PARAMS)[keyof typeof PARAMS],
): Promise<Record<string, number>> {
  const before = await rssBytes(server.pid);
  const cpu0 = await cpuMicros(server.pid);
  const url = server.wsUrl(undefined);
  const out = await new Deno.Command("node", {
    args: [
      CHURN_SCRIPT,
      url,
      tokensFile,
      String(p.cycles),
      String(p.concurrency),
      String(p.rooms),
      "10000",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const cpu1 = await cpuMicros(server.pid);
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success || text === "") {
    throw new Error(`churn generator failed: ${new TextDecoder().decode(out.stderr).slice(-500)}`);
  }
  const r = JSON.parse(text) as { cycles: number; failed: number; ms: number; firstError?: string };
  if (r.failed > 0) throw new Error(`${r.failed} of ${r.cycles} cycles failed: ${r.firstError}`);
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  const after = await rssBytes(server.pid);
  const mb = 1024 * 1024;
  return {
    rssBeforeMb: before / mb,
    rssAfterMb: after / mb,
    rssGrowthMb: (after - before) / mb,
    cyclesPerSec: (r.cycles / r.ms) * 1000,
    serverCpuUs: (cpu1 - cpu0) / r.cycles,
  };
}

/** Runs the churn scenario; one section. */
export async function churnScenario(ctx: Context): Promise<Section[]> {
  const p = PARAMS[ctx.config.mode];
  const ids = COMPARED.filter((id) => ctx.servers.includes(id));
  log(`churn ×${p.cycles}, ${p.rounds} round(s)`);
  // The generator is Node whatever the servers (run.ts checks only for idle and the Node servers).
  const missing = await ensureNodePeers(log);
  if (missing !== undefined) throw new Error(`cannot run churn: ${missing}`);
  const tokens = await mintTokens(p.cycles, { alg: "HS256", subPrefix: "churn" });
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  const tokensFile = `${RESULTS_DIR}churn-tokens-${Deno.pid}.tmp`;
  await Deno.writeTextFile(tokensFile, tokens.join("\n"));
  const results = new Map<ServerId, Record<string, number>[]>(ids.map((id) => [id, []]));
  const failures = new Map<ServerId, string>();
  try {
    for (let round = 0; round < p.rounds; round++) {
      for (const id of ids) {
        if (failures.has(id)) continue;
        let server: RunningServer | undefined;
        try {
          // Fresh process every round: RSS after churn needs a clean start.
          server = await startServer(SERVERS[id]);
          const r = await churnOnce(server, tokensFile, p);
          results.get(id)!.push(r);
          log(
            `  ${SERVERS[id].label}: RSS ${r.rssBeforeMb!.toFixed(0)} → ${
              r.rssAfterMb!.toFixed(0)
            } MB, ${r.cyclesPerSec!.toFixed(0)} cycles/s`,
          );
        } catch (err) {
          failures.set(id, describeFailure(err, server));
          log(`${SERVERS[id].label} failed: ${describeFailure(err, server).split("\n")[0]}`);
        } finally {
          await server?.close();
        }
      }
    }
  } finally {
    await Deno.remove(tokensFile).catch(() => {});
  }
  const rows: Row[] = ids.map((id) => {
    const reason = failures.get(id);
    return reason === undefined
      ? okRow(id, SERVERS[id].label, results.get(id) ?? [])
      : { id, label: SERVERS[id].label, status: "failed", reason, metrics: {} };
  });
  return [{
    id: CHURN_SECTION,
    title: `Post-churn memory, ${p.cycles.toLocaleString("en-US")} cycles`,
    description: `${p.cycles} cycles of connect → join → publish (own message back) → leave → ` +
      `close, ${p.concurrency} at a time, each a new user with its own HS256 token, over ` +
      `${p.rooms} rooms, from one Node \`ws\` process. RSS read before and ${SETTLE_MS} ms ` +
      `after, on a fresh server process each of ${p.rounds} alternating round(s). Ours and ` +
      "bare Deno only (the issue's comparison).",
    metrics: [
      { key: "rssAfterMb", label: "RSS after churn MB", digits: 1 },
      { key: "rssBeforeMb", label: "RSS before MB", digits: 1 },
      { key: "rssGrowthMb", label: "RSS growth MB", digits: 1 },
      { key: "cyclesPerSec", label: "cycles/s", digits: 0 },
      { key: "serverCpuUs", label: "server CPU µs/cycle", digits: 0 },
    ],
    rows,
  }];
}
