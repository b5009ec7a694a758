/**
 * Runs one measurement per contender per round, rounds alternating
 * (A B C, A B C, ...), so slow drift of a shared machine hits every contender
 * alike and per-round ratios stay fair.
 *
 * @module
 */
import { okRow, type Row } from "./_report.ts";
import {
  type RunningServer,
  type ServerSpec,
  type StartOptions,
  startServer,
  withClientQuery,
} from "./_servers.ts";

/** One row of a scenario: a server, possibly started with particular options. */
export interface Contender {
  id: string;
  label: string;
  spec: ServerSpec;
  startOptions?: StartOptions;
  /**
   * Added to the client's WebSocket URL (`{ batch: "1" }`). Only the client
   * differs: the row shares the process of the contender started the same way.
   */
  clientQuery?: Record<string, string>;
}

/** A measurement of one run; throw to fail the contender's row. */
export type Measure = (
  contender: Contender,
  server: RunningServer,
  run: number,
) => Promise<Record<string, number>>;

/** Prints progress on stderr (stdout carries the table). */
export function log(message: string): void {
  console.error(`[bench] ${message}`);
}

/** The message of an error, with the server's last output when it died. */
export function describeFailure(err: unknown, server?: RunningServer): string {
  const message = err instanceof Error ? err.message : String(err);
  return server?.exited ? `${message}; server exited:\n${server.logTail()}` : message;
}

const shared = new Map<string, RunningServer>();

/**
 * A running server for `contender`, shared by the scenarios that do not need
 * a fresh process (start-up, ~0.5 s each, would otherwise dominate --quick).
 * Restarted if it died. {@linkcode closeSharedServers} stops them all.
 */
export async function sharedServer(contender: Contender): Promise<RunningServer> {
  // Keyed by what was started, not by row: "ours" in fan-out and "ours HS256"
  // in handshakes are the same process.
  const key = `${contender.spec.id} ${JSON.stringify(contender.startOptions ?? {})}`;
  const existing = shared.get(key);
  if (existing && !existing.exited) return existing;
  const server = await startServer(contender.spec, contender.startOptions);
  shared.set(key, server);
  return server;
}

/** Stops the servers {@linkcode sharedServer} started. */
export async function closeSharedServers(): Promise<void> {
  await Promise.all([...shared.values()].map((s) => s.close()));
  shared.clear();
}

/**
 * Runs `runs` alternating rounds of `measure` on each contender's shared
 * server and returns one row per contender.
 */
export async function alternate(
  contenders: readonly Contender[],
  runs: number,
  measure: Measure,
): Promise<Row[]> {
  const servers = new Map<string, RunningServer>();
  const failures = new Map<string, string>();
  const results = new Map<string, Record<string, number>[]>();
  // In parallel: start-up (Node ~0.4 s, ours ~0.5 s) adds up otherwise.
  await Promise.all(contenders.map(async (c) => {
    try {
      servers.set(c.id, await sharedServer(c));
      results.set(c.id, []);
    } catch (err) {
      failures.set(c.id, describeFailure(err));
      log(`${c.label}: ${describeFailure(err).split("\n")[0]}`);
    }
  }));
  for (let run = 0; run < runs; run++) {
    for (const c of contenders) {
      const server = servers.get(c.id);
      if (!server || failures.has(c.id)) continue;
      try {
        const view = c.clientQuery ? withClientQuery(server, c.clientQuery) : server;
        const r = await measure(c, view, run);
        results.get(c.id)!.push(r);
      } catch (err) {
        failures.set(c.id, `run ${run + 1}: ${describeFailure(err, server)}`);
        log(`${c.label} failed: ${describeFailure(err, server).split("\n")[0]}`);
      }
    }
  }
  return contenders.map((c) => {
    const reason = failures.get(c.id);
    if (reason !== undefined) {
      return { id: c.id, label: c.label, status: "failed", reason, metrics: {} };
    }
    return okRow(c.id, c.label, results.get(c.id) ?? []);
  });
}
