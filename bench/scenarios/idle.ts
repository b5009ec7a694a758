/**
 * Idle connections: C authenticated connections with heartbeat on. Server RSS
 * per connection, time to connect them all, and a drop check after a hold.
 * Each round starts every server fresh (RSS needs a clean baseline); the last
 * round's connections are held, all servers at once, then checked.
 *
 * @module
 */
import { type Contender, describeFailure, log } from "../_alternate.ts";
import type { IdleParams } from "../_config.ts";
import { rssBytes } from "../_proc.ts";
import { okRow, type Row, type Section } from "../_report.ts";
import { type RunningServer, startServer } from "../_servers.ts";
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

/** Opens the connections on `server`; resolves with the slowest process's connect time. */
async function openIdle(
  server: RunningServer,
  procs: readonly IdleProcess[],
  p: IdleParams,
  tokensFile: string,
): Promise<number> {
  const socketio = server.spec.client === "socketio";
  const events = await Promise.all(procs.map((proc, k) => {
    const offset = k * p.perProcess;
    return proc.command({
      cmd: "open",
      kind: server.spec.client,
      url: socketio ? server.httpUrl : server.wsUrl(),
      count: Math.min(p.perProcess, p.connections - offset),
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

/** Runs the idle-connection scenario; one section. */
export async function idleScenario(ctx: Context): Promise<Section[]> {
  const { config } = ctx;
  const p = config.idle;
  log(`idle ×${p.connections}, hold ${p.holdMs / 1000} s`);
  const tokens = await mintTokens(p.connections, { alg: "HS256", subPrefix: "idle" });
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  const tokensFile = `${RESULTS_DIR}idle-tokens-${Deno.pid}.tmp`;
  await Deno.writeTextFile(tokensFile, tokens.join("\n"));

  const contenders = contendersOf(ctx);
  const results = new Map<string, Record<string, number>[]>(contenders.map((c) => [c.id, []]));
  const failures = new Map<string, string>();
  const notes = new Map<string, string[]>();
  const processes = Math.ceil(p.connections / p.perProcess);
  const procs = new Map(contenders.map((c) => [
    c.id,
    Array.from({ length: processes }, () => new IdleProcess()),
  ]));
  let servers = new Map<string, RunningServer>();
  try {
    for (let run = 0; run < config.runs; run++) {
      // Fresh servers every round: RSS per connection needs a clean baseline.
      servers = await startAll(contenders.filter((c) => !failures.has(c.id)), p, failures);
      for (const c of contenders) {
        const server = servers.get(c.id);
        if (!server) continue;
        try {
          const rssBefore = await rssBytes(server.pid);
          const connectMs = await openIdle(server, procs.get(c.id)!, p, tokensFile);
          await new Promise((r) => setTimeout(r, p.settleMs));
          const rssKb = (await rssBytes(server.pid) - rssBefore) / p.connections / 1024;
          results.get(c.id)!.push({ rssKb, connectMs });
          log(`  ${c.label}: ${rssKb.toFixed(1)} KB/conn, connected in ${connectMs.toFixed(0)} ms`);
          if (run === config.runs - 1) continue;
          await closeIdle(procs.get(c.id)!);
        } catch (err) {
          failures.set(c.id, `run ${run + 1}: ${describeFailure(err, server)}`);
          log(`${c.label} failed: ${describeFailure(err, server).split("\n")[0]}`);
        }
        await server.close();
        servers.delete(c.id);
      }
    }
    // The last round's servers still hold their connections: hold, then check.
    if (servers.size > 0) {
      log(`  holding ${servers.size} × ${p.connections} connections for ${p.holdMs / 1000} s`);
      await new Promise((r) => setTimeout(r, p.holdMs));
    }
    for (const [id, server] of servers) {
      try {
        const checks = await Promise.all(
          procs.get(id)!.map((proc) => proc.command({ cmd: "check" }, 10_000)),
        );
        const dropped = checks.reduce((n, e) => n + (e.dropped ?? 0), 0);
        const open = checks.reduce((n, e) => n + (e.open ?? 0), 0);
        if (dropped > 0 || open !== p.connections || server.exited) {
          throw new Error(
            `${dropped} of ${p.connections} connections dropped during the ${
              p.holdMs / 1000
            } s hold`,
          );
        }
        notes.set(id, [`0 of ${p.connections} dropped after ${p.holdMs / 1000} s`]);
      } catch (err) {
        failures.set(id, `hold: ${describeFailure(err, server)}`);
      }
    }
  } finally {
    await Promise.all([...procs.values()].flat().map((proc) => proc.close()));
    await Promise.all([...servers.values()].map((s) => s.close()));
    await Deno.remove(tokensFile).catch(() => {});
  }

  const rows: Row[] = contenders.map((c) => {
    const reason = failures.get(c.id);
    if (reason !== undefined) {
      return { id: c.id, label: c.label, status: "failed", reason, metrics: {} };
    }
    const row = okRow(c.id, c.label, results.get(c.id)!);
    const n = notes.get(c.id);
    return n ? { ...row, notes: n } : row;
  });
  return [{
    id: "idle",
    title: `Idle connections, C=${p.connections.toLocaleString("en-US")}`,
    description: `Authenticated connections (token in the URL; bare servers ignore it) from ` +
      `${Math.ceil(p.connections / p.perProcess)} Node \`ws\` / socket.io-client processes over ` +
      `${p.sources.length} loopback source addresses, heartbeat every ${p.heartbeatMs / 1000} s ` +
      `(ours: its default). RSS/conn = (VmRSS ${p.settleMs} ms after the last connect − VmRSS before) / C. ` +
      `The last round is held ${p.holdMs / 1000} s, all servers at once, then checked for drops.`,
    metrics: [
      { key: "rssKb", label: "server RSS KB/conn", digits: 1 },
      { key: "connectMs", label: "time to connect all, ms", digits: 0 },
    ],
    rows,
  }];
}
