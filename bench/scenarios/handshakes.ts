/**
 * Handshakes: authenticated upgrades/s and latency with HS256 and ES256
 * tokens, each fresh (never seen by the server), then the same tokens again
 * against a warm verified-token cache (a reconnect storm), against bare
 * Deno's unauthenticated upgrades.
 *
 * @module
 */
import { alternate, type Contender, log } from "../_alternate.ts";
import type { Row, Section } from "../_report.ts";
import { SERVERS } from "../_servers.ts";
import { generateEs256Keys, mintTokens } from "../_tokens.ts";
import { type HandshakeResult, runHandshakes } from "../gen/handshakes.ts";
import { contendersOf, type Context } from "./_context.ts";

function figures(r: HandshakeResult, prefix = ""): Record<string, number> {
  if (r.failed > 0) throw new Error(`${r.failed} handshakes failed`);
  return {
    [`${prefix}perSec`]: r.perSec,
    [`${prefix}serverCpuUs`]: r.serverCpuUsPerHandshake,
    [`${prefix}p50`]: r.p50Ms,
    [`${prefix}p99`]: r.p99Ms,
  };
}

/** Rows measured twice in one turn (fresh tokens, then the same again): [cold, warm] ids and labels. */
const WARM_SPLITS: Readonly<Record<string, readonly [string, string, string, string]>> = {
  ours_hs256: [
    "ours_hs256",
    "ours HS256, fresh tokens",
    "ours_hs256_warm",
    "ours HS256, warm cache (same tokens)",
  ],
  ours_es256: [
    "ours_es256_cold",
    "ours ES256, cold token cache",
    "ours_es256_warm",
    "ours ES256, warm cache (same tokens)",
  ],
};

/** Splits each row measured cold then warm in one run into two rows. */
function splitWarm(rows: Row[]): Row[] {
  return rows.flatMap((row) => {
    const split = WARM_SPLITS[row.id];
    if (split === undefined) return [row];
    const cold: Row = { ...row, id: split[0], label: split[1], metrics: {} };
    const warm: Row = { ...row, id: split[2], label: split[3], metrics: {} };
    for (const [key, value] of Object.entries(row.metrics)) {
      if (key.startsWith("warm_")) warm.metrics[key.slice(5)] = value;
      else cold.metrics[key] = value;
    }
    return [cold, warm];
  });
}

/** Runs the handshake scenario; one section. */
export async function handshakesScenario(ctx: Context): Promise<Section[]> {
  const p = ctx.config.handshakes;
  log(`handshakes ×${p.count}`);
  const contenders: Contender[] = contendersOf(ctx, { denoEngine: true }).map((c) =>
    c.id === "ours" ? { ...c, id: "ours_hs256", label: "ours HS256" } : c
  );
  const es256 = ctx.servers.includes("ours") ? await generateEs256Keys() : undefined;
  if (es256) {
    const at = contenders.findIndex((c) => c.id === "ours_hs256") + 1;
    contenders.splice(at, 0, {
      id: "ours_es256",
      label: "ours ES256",
      spec: SERVERS.ours,
      startOptions: { es256PublicKeyPem: es256.publicKeyPem },
    });
  }
  const rows = await alternate(contenders, ctx.config.runs, async (c, server, run) => {
    // Fresh subjects every run: the first pass is cold for the verified-token
    // cache even though the server lives across runs; ours then replays them.
    const tokens = c.id === "ours_es256" && es256
      ? await mintTokens(p.count, { alg: "ES256", es256, subPrefix: `es${run}` })
      : await mintTokens(p.count, { alg: "HS256", subPrefix: `hs${run}-${c.id}` });
    if (c.id in WARM_SPLITS) {
      const cold = await runHandshakes(server, p, tokens);
      const warm = await runHandshakes(server, p, tokens);
      log(`  ${c.label}: cold ${cold.perSec.toFixed(0)}/s, warm ${warm.perSec.toFixed(0)}/s`);
      return { ...figures(cold), ...figures(warm, "warm_") };
    }
    const r = await runHandshakes(server, p, tokens);
    log(`  ${c.label}: ${r.perSec.toFixed(0)}/s, p99 ${r.p99Ms.toFixed(1)} ms`);
    return figures(r);
  });
  return [{
    id: "handshakes",
    title: "Handshakes",
    description:
      `${p.count} connect-then-close cycles, ${p.concurrency} in flight. Plain WebSocket: ` +
      `until \`open\` (ours verifies the JWT before upgrading; bare servers ignore the token). ` +
      `Socket.IO: until \`connect\` (includes its CONNECT round trip).`,
    metrics: [
      { key: "perSec", label: "handshakes/s", digits: 0 },
      { key: "serverCpuUs", label: "server CPU µs/handshake", digits: 0 },
      { key: "p50", label: "p50 ms", digits: 2 },
      { key: "p99", label: "p99 ms", digits: 2 },
    ],
    rows: splitWarm(rows),
  }];
}
