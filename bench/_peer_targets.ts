/**
 * Issue 19's fan-out targets against the raw-speed peers, for the sizes a run
 * used: ours in the browser client's default mode (batched) against Bun's
 * `server.publish`, and ours unbatched (what third-party clients get)
 * against bare Deno, both in server CPU per delivery.
 *
 * @module
 */
import type { BenchConfig } from "./_config.ts";
import type { TargetDef } from "./_report.ts";
import { OURS_BATCHED } from "./scenarios/_context.ts";

/** Section id of the fan-out table for `subscribers` (as scenarios/fanout.ts names it). */
function fanoutSection(subscribers: number): string {
  return `fanout_${subscribers}`;
}

/** The CPU-per-delivery targets of every fan-out size of `config`. */
export function peerFanoutTargets(config: BenchConfig): TargetDef[] {
  return config.fanout.flatMap(({ subscribers: n }): TargetDef[] => [
    {
      name: `N=${n}: ours batched (the browser client's default) ≤ 1.0× Bun ` +
        "(server CPU per delivery)",
      section: fanoutSection(n),
      metric: "serverCpuUs",
      numerator: OURS_BATCHED,
      denominator: "bun",
      direction: "<=",
      goal: 1.0,
    },
    {
      name: `N=${n}: ours unbatched ≤ 1.05× bare Deno (server CPU per delivery)`,
      section: fanoutSection(n),
      metric: "serverCpuUs",
      numerator: "ours",
      denominator: "bare_deno",
      direction: "<=",
      goal: 1.05,
    },
  ]);
}
