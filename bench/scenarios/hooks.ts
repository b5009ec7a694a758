/**
 * The backend in the loop (issue 18): joins with the join hook (cache cold:
 * every join asks the backend; warm: the answer is cached) and publishes
 * with the publish hook, next to the same requests without hooks, on one
 * server process (so the rows differ only by the hook) and a minimal
 * backend on loopback in the bench process. One request in flight at a
 * time: latency p50/p99 and the server's CPU per request (the backend's CPU
 * is not in it).
 *
 * @module
 */
import { alternate, type Contender, log } from "../_alternate.ts";
import type { Section } from "../_report.ts";
import { SERVERS } from "../_servers.ts";
import {
  HOOK_POLICY,
  hookBenchToken,
  HOOKED_PREFIX,
  hookedServerEnv,
  joinRun,
  OPEN_PREFIX,
  PRIVATE_PREFIX,
  publishRun,
  startBenchHookBackend,
} from "../gen/hooks.ts";
import type { Context } from "./_context.ts";

/** Section ids of the hook rows. */
export const HOOK_SECTIONS = { join: "hooks_join", publish: "hooks_publish" } as const;
/** Row ids of the hook sections (targets and the expected-rows check use them). */
export const HOOK_ROWS = {
  joinPlain: "ours",
  joinCold: "ours_join_hook_cold",
  joinWarm: "ours_join_hook_warm",
  publishPlain: "ours",
  publish: "ours_publish_hook",
} as const;

const METRICS = [
  { key: "p50", label: "p50 ms", digits: 2 },
  { key: "p99", label: "p99 ms", digits: 2 },
  { key: "serverCpuUs", label: "server CPU µs/request", digits: 0 },
];

/** Runs the hook scenario (ours only); two sections. */
export async function hooksScenario(ctx: Context): Promise<Section[]> {
  if (!ctx.servers.includes("ours")) return [];
  const p = ctx.config.hooks;
  log(`hooks: ${p.joins} joins, ${p.publishes} publishes per row and run`);
  await using backend = startBenchHookBackend();
  const policy = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(policy, HOOK_POLICY);
    const startOptions = { env: hookedServerEnv(backend.url, policy) };
    const row = (id: string, label: string): Contender => ({
      id,
      label,
      spec: SERVERS.ours,
      startOptions,
    });
    const token = await hookBenchToken("hook-bench");
    let calls = 0;
    const joins = await alternate(
      [
        row(HOOK_ROWS.joinPlain, "ours, no hook (the token grants the room)"),
        row(HOOK_ROWS.joinCold, "ours, join hook, cache cold (one backend call per join)"),
        row(HOOK_ROWS.joinWarm, "ours, join hook, cache warm (answer cached)"),
      ],
      ctx.config.runs,
      async (c, server, run) => {
        const prefix = c.id === HOOK_ROWS.joinPlain
          ? `${OPEN_PREFIX}${run}:`
          : `${PRIVATE_PREFIX}${c.id}:${run}:`;
        // Warm: the same rooms once first (untimed figures), so every timed join finds its answer cached.
        if (c.id === HOOK_ROWS.joinWarm) await joinRun(server, p, { token, prefix });
        calls = backend.calls.join;
        const r = await joinRun(server, p, { token, prefix });
        const asked = backend.calls.join - calls;
        const expected = c.id === HOOK_ROWS.joinCold ? p.joins : 0;
        if (asked !== expected) {
          throw new Error(`${asked} join hook calls for ${p.joins} joins, expected ${expected}`);
        }
        log(`  ${c.label}: p50 ${r.p50.toFixed(2)} ms, ${r.serverCpuUs.toFixed(0)} µs`);
        return { ...r };
      },
    );
    const publishes = await alternate(
      [
        row(HOOK_ROWS.publishPlain, "ours, no hook"),
        row(HOOK_ROWS.publish, "ours, publish hook (one backend call per message)"),
      ],
      ctx.config.runs,
      async (c, server, run) => {
        const hooked = c.id === HOOK_ROWS.publish;
        const room = `${hooked ? HOOKED_PREFIX : OPEN_PREFIX}pub:${run}`;
        calls = backend.calls.publish;
        const r = await publishRun(server, p, { token, room });
        const asked = backend.calls.publish - calls;
        if (asked !== (hooked ? p.publishes : 0)) {
          throw new Error(`${asked} publish hook calls for ${p.publishes} messages`);
        }
        log(`  ${c.label}: p50 ${r.p50.toFixed(2)} ms, ${r.serverCpuUs.toFixed(0)} µs`);
        return { ...r };
      },
    );
    const method = "One client, one request in flight; the backend (in the bench process, " +
      "loopback HTTP) answers at once and its CPU is not counted.";
    return [
      {
        id: HOOK_SECTIONS.join,
        title: `Join hook, ${p.joins} joins per run`,
        description: `Each join answered \`joined\`, then left (the leave is outside the ` +
          `latency, inside the CPU figure). ${method} ` +
          "Cold: every room is new to the cache; warm: each room was joined once before, " +
          "so the hook's `cacheSec` answer is reused (checked: no backend call).",
        metrics: METRICS,
        rows: joins,
      },
      {
        id: HOOK_SECTIONS.publish,
        title: `Publish hook, ${p.publishes} messages per run`,
        description: `Each message awaited to its \`ack\`. ${method} The hooked room's policy ` +
          'rule sets `"hook": true`; the other room has none.',
        metrics: METRICS,
        rows: publishes,
      },
    ];
  } finally {
    await Deno.remove(policy);
  }
}
