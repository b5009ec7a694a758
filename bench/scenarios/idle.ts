/**
 * Idle connections: C authenticated connections with heartbeat on. Server RSS
 * per connection, time to connect them all, and a drop check after a hold.
 * Each round starts every server fresh (RSS needs a clean baseline); the last
 * round's connections are held, all servers at once, then checked. Ours is
 * also run once at a larger C (the issue's 15,000), alone, and held through
 * the same hold: the comparison at that size, ×3 rounds ×4 servers, would not
 * fit the bench's time budget.
 *
 * @module
 */
import { type Contender, describeFailure, log } from "../_alternate.ts";
import type { IdleParams } from "../_config.ts";
import { rssBytes } from "../_proc.ts";
import { okRow, type Row, type Section } from "../_report.ts";
import { type RunningServer, SERVERS, startServer } from "../_servers.ts";
import { mintTokens } from "../_tokens.ts";
import { contendersOf, type Context } from "./_context.ts";

const IDLE_SCRIPT = new URL("../node/idle.mjs", import.meta.url).pathname;
const RESULTS_DIR = new URL("../results/", import.meta.url).pathname;

interface IdleEvent {
  event: "connected" | "failed" | "check" | "closed";
  ms?: number;
  message?: string;
  open?: number;
  dropped?: number;
}

/** One Node generator process; it opens, holds and closes a slice of the connections. */
class IdleProcess {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;
  #stderr = "";

  constructor() {
    this.#child = new Deno.Command("node", {
      args: [IDLE_SCRIPT],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#lines = readLines(this.#child.stdout)[Symbol.asyncIterator]();
    this.#child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (t) => void (this.#stderr = (this.#stderr + t).slice(-2000)) }),
    ).catch(() => {});
  }

  /** Sends a command and waits for its reply; throws after `timeoutMs` or if the process died. */
  async command(command: Record<string, unknown>, timeoutMs: number): Promise<IdleEvent> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new Error(`idle generator gave no reply to ${command.cmd} in ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      const line = await Promise.race([this.#lines.next(), timeout]);
      if (line.done) throw new Error(`idle generator exited: ${this.#stderr.trim().slice(-500)}`);
      return JSON.parse(line.value) as IdleEvent;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends stdin (the process closes its connections and exits); kills it if it lingers. */
  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, 5000);
    await this.#child.status;
    clearTimeout(timer);
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) !== -1) {
      yield buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
    }
  }
}

/** Opens `count` connections on `server`; resolves with the slowest process's connect time. */
async function openIdle(
  server: RunningServer,
  procs: readonly IdleProcess[],
  p: IdleParams,
  count: number,
  tokensFile: string,
): Promise<number> {
  const socketio = server.spec.client === "socketio";
  const events = await Promise.all(procs.map((proc, k) => {
    const offset = k * p.perProcess;
    return proc.command({
      cmd: "open",
      kind: server.spec.client,
      url: socketio ? server.httpUrl : server.wsUrl(),
      count: Math.min(p.perProcess, count - offset),
      offset,
      tokensFile,
      // Each process starts at a different source so ports spread evenly.
      sources: p.sources.map((_, i) => p.sources[(i + k) % p.sources.length]!),
      concurrency: p.concurrency,
      timeoutMs: p.connectTimeoutMs,
    }, p.connectTimeoutMs + 10_000);
  }));
  const failed = events.find((e) => e.event !== "connected");
  if (failed) {
    await closeIdle(procs);
    throw new Error(`connect failed: ${failed.message ?? JSON.stringify(failed)}`);
  }
  // Processes connect concurrently, so the slowest one is the wall time.
  return Math.max(...events.map((e) => e.ms ?? NaN));
}

async function closeIdle(procs: readonly IdleProcess[]): Promise<void> {
  await Promise.all(procs.map((proc) => proc.command({ cmd: "close" }, 10_000).catch(() => {})));
}

/** Starts the contenders' servers in parallel; a failure is recorded, not thrown. */
async function startAll(
  contenders: readonly Contender[],
  p: IdleParams,
  failures: Map<string, string>,
): Promise<Map<string, RunningServer>> {
  const started = new Map<string, RunningServer>();
  await Promise.all(contenders.map(async (c) => {
    try {
      started.set(c.id, await startServer(c.spec, { heartbeatMs: p.heartbeatMs }));
    } catch (err) {
      failures.set(c.id, describeFailure(err));
      log(`${c.label}: ${describeFailure(err).split("\n")[0]}`);
    }
  }));
  return started;
}

/** A server whose connections are held open until the drop check. */
interface Held {
  server: RunningServer;
  procs: IdleProcess[];
  count: number;
  /** `performance.now()` when the last connection opened: the hold starts there. */
  since: number;
}

/** Opens `count` on a server and measures it; the connections stay open. */
async function measureOne(
  server: RunningServer,
  procs: readonly IdleProcess[],
  p: IdleParams,
  count: number,
  tokensFile: string,
): Promise<{ rssKb: number; connectMs: number }> {
  const rssBefore = await rssBytes(server.pid);
  const connectMs = await openIdle(server, procs, p, count, tokensFile);
  await new Promise((r) => setTimeout(r, p.settleMs));
  const rssKb = (await rssBytes(server.pid) - rssBefore) / count / 1024;
  return { rssKb, connectMs };
}

/** Asks the generators holding `held` how many connections survived; throws on any drop. */
async function checkHeld(held: Held): Promise<string> {
  const heldSec = Math.floor((performance.now() - held.since) / 1000);
  const checks = await Promise.all(
    held.procs.map((proc) => proc.command({ cmd: "check" }, 10_000)),
  );
  const dropped = checks.reduce((n, e) => n + (e.dropped ?? 0), 0);
  const open = checks.reduce((n, e) => n + (e.open ?? 0), 0);
  if (dropped > 0 || open !== held.count || held.server.exited) {
    throw new Error(
      `${dropped} of ${held.count} connections dropped (${open} open) during a ${heldSec} s hold`,
    );
  }
  return `0 of ${fmt(held.count)} dropped after ${heldSec} s`;
}

function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

/** The section's method line. */
function describe(p: IdleParams, runs: number, large: number): string {
  const processes = Math.ceil(p.connections / p.perProcess);
  const sentences = [
    `Authenticated connections (token in the URL; bare servers ignore it) from ${processes} ` +
    `Node \`ws\` / socket.io-client process(es) per ${fmt(p.perProcess)} connections, over ` +
    `${p.sources.length} loopback source addresses; heartbeat every ${p.heartbeatMs / 1000} s on ` +
    `every server.`,
    `RSS/conn = (VmRSS ${p.settleMs} ms after the last connect − VmRSS before) / C, on a fresh ` +
    `process each round; ${runs} alternating rounds at C=${fmt(p.connections)}.`,
  ];
  if (large > 0) {
    sentences.push(
      `Ours alone is first connected once at C=${fmt(large)}, the issue's size, on its own ` +
        `process, and holds them ${p.holdMs / 1000} s while the comparison runs beside it ` +
        `(idle but for its heartbeats: a background load every comparison server sees alike). All four servers × ` +
        `${runs} rounds at that size would spend ~3 minutes connecting on 2 cores (≈ 3.5 ms ` +
        `per connection summed over the four) and break the 5-minute budget. ` +
        `RSS/conn falls as C grows (fixed costs spread), so compare rows of the same C: the ` +
        `ratio target is read at C=${fmt(p.connections)}.`,
      `The comparison's last round is held ≥ ${p.minHoldMs / 1000} s (≥ 2 heartbeats). ` +
        `Every held server is then checked for drops.`,
    );
  } else {
    sentences.push(
      `The last round's servers then hold their connections ${p.holdMs / 1000} s at once, ` +
        `heartbeats running, and are checked for drops.`,
    );
  }
  return sentences.join(" ");
}

/** Row id of ours' single large round. */
export const OURS_LARGE = "ours_large";

/** Runs the idle-connection scenario; one section. */
export async function idleScenario(ctx: Context): Promise<Section[]> {
  const { config } = ctx;
  const p = config.idle;
  const large = ctx.servers.includes("ours") ? p.oursOnlyConnections : 0;
  log(
    `idle ×${p.connections}${large > 0 ? `, ours alone ×${large}` : ""}, hold ${p.holdMs / 1000} s`,
  );
  const tokens = await mintTokens(Math.max(p.connections, large), {
    alg: "HS256",
    subPrefix: "idle",
  });
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  const tokensFile = `${RESULTS_DIR}idle-tokens-${Deno.pid}.tmp`;
  await Deno.writeTextFile(tokensFile, tokens.join("\n"));

  const contenders = contendersOf(ctx, { denoEngine: true });
  const largeLabel = `ours, C=${fmt(large)} (ours alone, 1 round)`;
  const results = new Map<string, Record<string, number>[]>(
    [...contenders.map((c) => c.id), OURS_LARGE].map((id) => [id, []]),
  );
  const failures = new Map<string, string>();
  const notes = new Map<string, string[]>();
  const spawn = (count: number) =>
    Array.from({ length: Math.ceil(count / p.perProcess) }, () => new IdleProcess());
  // Node start-up (~0.4 s) is paid once per process, not per round.
  const procs = new Map(contenders.map((c) => [c.id, spawn(p.connections)]));
  if (large > 0) procs.set(OURS_LARGE, spawn(large));
  const held = new Map<string, Held>();
  const servers = new Map<string, RunningServer>();
  try {
    if (large > 0) {
      // Ours alone first: its hold then runs while the comparison is measured,
      // instead of adding a minute of waiting to the bench. Idle, it costs the
      // machine only its heartbeats meanwhile.
      const started = await startAll(
        [{ id: OURS_LARGE, label: largeLabel, spec: SERVERS.ours }],
        p,
        failures,
      );
      const server = started.get(OURS_LARGE);
      if (server) {
        servers.set(OURS_LARGE, server);
        try {
          const r = await measureOne(server, procs.get(OURS_LARGE)!, p, large, tokensFile);
          results.get(OURS_LARGE)!.push(r);
          held.set(OURS_LARGE, {
            server,
            procs: procs.get(OURS_LARGE)!,
            count: large,
            since: performance.now(),
          });
          log(
            `  ${largeLabel}: ${r.rssKb.toFixed(1)} KB/conn, connected in ${
              r.connectMs.toFixed(0)
            } ms`,
          );
        } catch (err) {
          failures.set(OURS_LARGE, describeFailure(err, server));
          log(`${largeLabel} failed: ${describeFailure(err, server).split("\n")[0]}`);
        }
      }
    }
    for (let run = 0; run < config.runs; run++) {
      // Fresh servers every round: RSS per connection needs a clean baseline.
      const round = await startAll(contenders.filter((c) => !failures.has(c.id)), p, failures);
      for (const c of contenders) {
        const server = round.get(c.id);
        if (!server) continue;
        servers.set(c.id, server);
        try {
          const r = await measureOne(server, procs.get(c.id)!, p, p.connections, tokensFile);
          results.get(c.id)!.push(r);
          log(
            `  ${c.label}: ${r.rssKb.toFixed(1)} KB/conn, connected in ${
              r.connectMs.toFixed(0)
            } ms`,
          );
          if (run === config.runs - 1) {
            const since = performance.now();
            held.set(c.id, { server, procs: procs.get(c.id)!, count: p.connections, since });
            continue;
          }
          await closeIdle(procs.get(c.id)!);
        } catch (err) {
          failures.set(c.id, `run ${run + 1}: ${describeFailure(err, server)}`);
          log(`${c.label} failed: ${describeFailure(err, server).split("\n")[0]}`);
        }
        await server.close();
        servers.delete(c.id);
      }
    }
    if (held.size > 0) {
      const now = performance.now();
      const alone = held.get(OURS_LARGE);
      const last = Math.max(...[...held.values()].map((h) => h.since));
      const until = Math.max(
        alone ? alone.since + p.holdMs : last + p.holdMs,
        last + p.minHoldMs,
      );
      const counts = [...held.values()].map((h) => fmt(h.count)).join(" + ");
      log(`  holding ${counts} connections ${((until - now) / 1000).toFixed(0)} s more`);
      await new Promise((r) => setTimeout(r, Math.max(0, until - now)));
    }
    for (const [id, h] of held) {
      try {
        notes.set(id, [await checkHeld(h)]);
      } catch (err) {
        failures.set(id, `hold: ${describeFailure(err, h.server)}`);
      }
    }
  } finally {
    await Promise.all([...procs.values()].flat().map((proc) => proc.close()));
    await Promise.all([...servers.values()].map((s) => s.close()));
    await Deno.remove(tokensFile).catch(() => {});
  }

  const row = (id: string, label: string): Row => {
    const reason = failures.get(id);
    if (reason !== undefined) return { id, label, status: "failed", reason, metrics: {} };
    const ok = okRow(id, label, results.get(id)!);
    const n = notes.get(id);
    return n ? { ...ok, notes: n } : ok;
  };
  const rows = contenders.map((c) => row(c.id, c.label));
  if (large > 0) {
    rows.splice(rows.findIndex((r) => r.id === "ours") + 1, 0, row(OURS_LARGE, largeLabel));
  }
  return [{
    id: "idle",
    title: `Idle connections, C=${fmt(p.connections)}` +
      (large > 0 ? ` (ours alone also at C=${fmt(large)})` : ""),
    description: describe(p, config.runs, large),
    metrics: [
      { key: "rssKb", label: "server RSS KB/conn", digits: 1 },
      { key: "connectMs", label: "time to connect all, ms", digits: 0 },
    ],
    rows,
  }];
}
