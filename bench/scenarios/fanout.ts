/**
 * Fan-out: one room, N subscribers, one publisher. Deliveries/s, end-to-end
 * latency saturated and at 10 msg/s, and server CPU per delivery. Every size
 * runs on the same servers within one round; one section per size.
 *
 * @module
 */
import { alternate, log } from "../_alternate.ts";
import type { Row, Section } from "../_report.ts";
import type { Summary } from "../_stats.ts";
import { mintTokens } from "../_tokens.ts";
import { runFanoutSizes } from "../gen/fanout.ts";
import { BATCHED_NOTE, contendersOf, type Context } from "./_context.ts";

/** Section id of the fan-out table for `subscribers`. */
export function fanoutSectionId(subscribers: number): string {
  return `fanout_${subscribers}`;
}

/** The rows of one size, from rows whose metric keys are prefixed `${n}:`. */
function rowsForSize(rows: readonly Row[], n: number): Row[] {
  return rows.map((row) => {
    const metrics: Record<string, Summary> = {};
    for (const [key, value] of Object.entries(row.metrics)) {
      if (key.startsWith(`${n}:`)) metrics[key.slice(`${n}:`.length)] = value;
    }
    return { ...row, metrics };
  });
}

/** Runs every fan-out size; one section per size. */
export async function fanoutScenario(ctx: Context): Promise<Section[]> {
  const sizes = ctx.config.fanout;
  log(`fan-out N=${sizes.map((p) => p.subscribers).join(", ")}`);
  const largest = Math.max(...sizes.map((p) => p.subscribers));
  const tokens = await mintTokens(largest + 1, { alg: "HS256", subPrefix: "fan" });
  const rows = await alternate(
    contendersOf(ctx, { batched: true, denoEngine: true }),
    ctx.config.runs,
    async (c, server) => {
      const figures: Record<string, number> = {};
      const results = await runFanoutSizes(server, sizes, tokens);
      for (const [i, params] of sizes.entries()) {
        const n = params.subscribers;
        const r = results[i]!;
        if (r.lost > 0 || r.errors > 0) {
          throw new Error(`N=${n}: ${r.lost} deliveries lost, ${r.errors} error frames`);
        }
        log(
          `  ${c.label} N=${n}: ${r.deliveriesPerSec.toFixed(0)}/s, ${
            r.serverCpuUsPerDelivery.toFixed(1)
          } µs/delivery, light p99 ${r.lightP99Ms.toFixed(1)} ms`,
        );
        Object.assign(figures, {
          [`${n}:deliveriesPerSec`]: r.deliveriesPerSec,
          [`${n}:serverCpuUs`]: r.serverCpuUsPerDelivery,
          [`${n}:deliveriesPerCpuSec`]: 1e6 / r.serverCpuUsPerDelivery,
          [`${n}:satP50`]: r.satP50Ms,
          [`${n}:satP99`]: r.satP99Ms,
          [`${n}:lightP50`]: r.lightP50Ms,
          [`${n}:lightP99`]: r.lightP99Ms,
          [`${n}:genCpuUs`]: r.generatorCpuUsPerDelivery,
        });
      }
      return figures;
    },
  );
  return sizes.map((params) => {
    const n = params.subscribers;
    return {
      id: fanoutSectionId(n),
      title: `Fan-out, N=${n.toLocaleString("en-US")} subscribers`,
      description:
        `1 publisher + ${n} subscribers in one room (sender included). Saturated: ${params.messages} ` +
        `messages, ${params.window} in flight (done when every member has it). Light: ${params.lightMessages} ` +
        `messages at ${params.lightRate} msg/s. Latency = payload timestamp to receipt. ` +
        `Server CPU from /proc utime+stime over the saturated phase; generator CPU near ` +
        `1e6 / deliveries/s means the generator was the bottleneck. Sizes run smallest first ` +
        `on one set of connections: the larger size adds the members it lacks to the smaller ` +
        `one's. ${BATCHED_NOTE}`,
      metrics: [
        { key: "deliveriesPerSec", label: "deliveries/s", digits: 0 },
        { key: "serverCpuUs", label: "server CPU µs/delivery", digits: 1 },
        { key: "deliveriesPerCpuSec", label: "deliveries per server CPU-s", digits: 0 },
        { key: "satP50", label: "saturated p50 ms", digits: 1 },
        { key: "satP99", label: "saturated p99 ms", digits: 1 },
        { key: "lightP50", label: "10 msg/s p50 ms", digits: 1 },
        { key: "lightP99", label: "10 msg/s p99 ms", digits: 1 },
        { key: "genCpuUs", label: "generator CPU µs/delivery", digits: 1 },
      ],
      rows: rowsForSize(rows, n),
    };
  });
}
