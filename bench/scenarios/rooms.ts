/**
 * Many rooms: R rooms × k members, everyone publishing at a steady rate.
 *
 * @module
 */
import { alternate, log } from "../_alternate.ts";
import type { Section } from "../_report.ts";
import { mintTokens } from "../_tokens.ts";
import { runRooms } from "../gen/rooms.ts";
import { BATCHED_NOTE, contendersOf, type Context } from "./_context.ts";

/** Runs the many-rooms scenario; one section. */
export async function roomsScenario(ctx: Context): Promise<Section[]> {
  const p = ctx.config.rooms;
  const members = p.rooms * p.membersPerRoom;
  log(`many rooms ${p.rooms}×${p.membersPerRoom}`);
  const tokens = await mintTokens(members, { alg: "HS256", subPrefix: "rooms" });
  const rows = await alternate(
    contendersOf(ctx, { batched: true }),
    ctx.config.runs,
    async (c, server) => {
      const r = await runRooms(server, p, tokens);
      if (r.lost > 0 || r.errors > 0) {
        throw new Error(`${r.lost} deliveries lost, ${r.errors} error frames`);
      }
      log(`  ${c.label}: ${r.deliveriesPerSec.toFixed(0)}/s, p99 ${r.p99Ms.toFixed(1)} ms`);
      return {
        deliveriesPerSec: r.deliveriesPerSec,
        serverCpuUs: r.serverCpuUsPerDelivery,
        p50: r.p50Ms,
        p99: r.p99Ms,
      };
    },
  );
  const offered = members * p.ratePerMember * p.membersPerRoom;
  return [{
    id: "rooms",
    title: `Many rooms, ${p.rooms} rooms × ${p.membersPerRoom} members`,
    description:
      `Every member publishes ${p.ratePerMember} msg/s into its room for ${p.durationMs} ms ` +
      `(offered ≈ ${
        offered.toLocaleString("en-US")
      } deliveries/s), then in-flight deliveries drain. ` +
      `Deliveries/s over publish + drain; a figure below the offered load means the server or generator fell behind. ` +
      BATCHED_NOTE,
    metrics: [
      { key: "deliveriesPerSec", label: "deliveries/s", digits: 0 },
      { key: "serverCpuUs", label: "server CPU µs/delivery", digits: 1 },
      { key: "p50", label: "p50 ms", digits: 1 },
      { key: "p99", label: "p99 ms", digits: 1 },
    ],
    rows,
  }];
}
