/**
 * Across isolates: fan-out through `deno serve --parallel` (BroadcastChannel)
 * and through Redis, reporting the latency each bus hop adds. Ours only.
 *
 * Skipped until the server can run on more than one instance; the rows are
 * still reported ("skipped: reason") so the table keeps its shape. To add
 * it: start ours with `deno serve --parallel` (or two processes on one Redis),
 * read `instanceId` from each `welcome`, run the light fan-out, and compare
 * latency of subscribers on the publisher's instance with the others'.
 *
 * @module
 */
import type { Section } from "../_report.ts";
import type { Context } from "./_context.ts";

const REASON = "not measured yet: the harness has no multi-instance start mode " +
  "(deno serve --parallel with REALTIME_SERVE_MODE=1; BUS=redis against a local redis-server)";

/** Reports the across-isolates rows as skipped, with the reason. */
export function isolatesScenario(ctx: Context): Promise<Section[]> {
  const rows = ctx.servers.includes("ours")
    ? [
      { id: "ours_parallel", label: "ours, deno serve --parallel (BroadcastChannel)" },
      { id: "ours_redis", label: "ours, 2 processes via Redis" },
    ].map((r) => ({ ...r, status: "skipped" as const, reason: REASON, metrics: {} }))
    : [];
  return Promise.resolve([{
    id: "isolates",
    title: "Across isolates (ours only)",
    description:
      "Added latency per bus hop: subscribers on another instance than the publisher vs the same one.",
    metrics: [
      { key: "sameP50", label: "same instance p50 ms", digits: 2 },
      { key: "otherP50", label: "other instance p50 ms", digits: 2 },
      { key: "addedP50", label: "added per hop p50 ms", digits: 2 },
      { key: "addedP99", label: "added per hop p99 ms", digits: 2 },
    ],
    rows,
  }]);
}
