/**
 * Pusher front door next to the native protocol (issue 17): the same server
 * process, N receivers, alternating runs of native clients in one room and
 * `pusher-js` clients (Node build) on one private channel fed by client
 * events. Server CPU per delivery; the target is Pusher ≤ 1.2× native.
 *
 * @module
 */
import { log } from "../_alternate.ts";
import { okRow, type Row, type Section } from "../_report.ts";
import { mintTokens } from "../_tokens.ts";
import { nativeFanoutRun, pusherFanoutRun, startPusherBenchServer } from "../gen/pusher.ts";
import type { Context } from "./_context.ts";

/** Section id of the Pusher rows. */
export const PUSHER_SECTION = "pusher_fanout";
/** Row id of native clients on the Pusher bench server. */
export const PUSHER_NATIVE_ROW = "ours_native";
/** Row id of `pusher-js` clients. */
export const PUSHER_ROW = "ours_pusher";

/** Runs the Pusher fan-out scenario (ours only); one section. */
export async function pusherScenario(ctx: Context): Promise<Section[]> {
  const p = ctx.config.pusher;
  const section: Section = {
    id: PUSHER_SECTION,
    title: `Pusher front door, fan-out N=${p.subscribers}`,
    description: `One server process (a Pusher app with client events on); ${p.messages} ` +
      `messages per run to ${p.subscribers} receivers, in windows of 10: native clients in ` +
      "one room (`/ws`, one publishing) and `pusher-js` 8 clients (Node build) on one private " +
      "channel (`/app/{key}`, one sending client events, never echoed), alternating runs on " +
      "fresh connections. Server CPU (/proc) per delivery.",
    metrics: [{ key: "serverCpuUs", label: "server CPU µs/delivery", digits: 2 }],
    rows: [],
  };
  if (!ctx.servers.includes("ours")) return [];
  log(`pusher fan-out N=${p.subscribers}`);
  const tokens = await mintTokens(p.subscribers + 1, { alg: "HS256", subPrefix: "pfan" });
  const native: Record<string, number>[] = [];
  const pusher: Record<string, number>[] = [];
  const server = await startPusherBenchServer();
  try {
    for (let run = 0; run < ctx.config.runs; run++) {
      const nativeUs = await nativeFanoutRun(server, p, tokens);
      const pusherUs = await pusherFanoutRun(server, p);
      native.push({ serverCpuUs: nativeUs });
      pusher.push({ serverCpuUs: pusherUs });
      log(
        `  run ${run + 1}: native ${nativeUs.toFixed(2)} µs, ` +
          `pusher-js ${pusherUs.toFixed(2)} µs per delivery`,
      );
    }
    section.rows = [
      okRow(PUSHER_NATIVE_ROW, "ours, native clients on /ws", native),
      okRow(PUSHER_ROW, "ours, pusher-js clients on /app/{key}", pusher),
    ];
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const failed = (id: string, label: string): Row => ({
      id,
      label,
      status: "failed",
      reason,
      metrics: {},
    });
    section.rows = [
      failed(PUSHER_NATIVE_ROW, "ours, native clients on /ws"),
      failed(PUSHER_ROW, "ours, pusher-js clients on /app/{key}"),
    ];
  } finally {
    await server.stop();
  }
  return [section];
}
