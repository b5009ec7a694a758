/**
 * Presence storm: E members sit in one presence room; S more connections
 * (one user each) join it spread over a few seconds, then leave the same
 * way. Measures what each existing member receives and how long until every
 * connection reads the final count.
 *
 * @module
 */
import { cpuMicros } from "../_proc.ts";
import type { RunningServer } from "../_servers.ts";
import { type BenchConnection, closeAll, connectMany } from "./_client.ts";
import { sumErrors } from "./fanout.ts";

/** Parameters of one presence storm. */
export interface PresenceParams {
  /** Members in the room before the storm (the ones whose frames are counted). */
  existing: number;
  /** Connections that join during the storm (and leave after it). */
  storm: number;
  /** Over how long the storm's joins (and leaves) are spread. */
  spreadMs: number;
  /** Bound on waiting for every connection to read the final count. */
  timeoutMs: number;
  /**
   * How long frames are still counted after the count settled (a window may
   * still be open; a large room sends at most one per second).
   */
  settleMs: number;
}

/** What one storm measured. */
export interface PresenceResult {
  /** Presence frames each existing member received during the join storm (mean). */
  joinFramesPerMember: number;
  /** From the first join until every connection read `count` = existing + storm. */
  joinConvergeMs: number;
  /** Presence frames each existing member received during the leave storm (mean). */
  leaveFramesPerMember: number;
  /** From the first leave until every existing member read `count` = existing. */
  leaveConvergeMs: number;
  /** Server CPU over both storms (all processes given), in milliseconds. */
  serverCpuMs: number;
  errors: number;
}

interface Tracked {
  conn: BenchConnection;
  count: number;
  frames: number;
}

function track(conn: BenchConnection): Tracked {
  const t: Tracked = { conn, count: -1, frames: 0 };
  conn.onFrame = (frame) => {
    if (frame.type !== "presence_state" && frame.type !== "presence_diff") return;
    t.frames++;
    t.count = (frame as { count: number }).count;
  };
  return t;
}

function until(check: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (check()) {
        clearInterval(timer);
        resolve(performance.now());
      } else if (performance.now() - start > timeoutMs) {
        clearInterval(timer);
        reject(new Error(`${what} not reached within ${timeoutMs} ms`));
      }
    }, 5);
  });
}

/** Spreads `action` over `items` evenly across `spreadMs`. */
async function spread<T>(items: readonly T[], spreadMs: number, action: (item: T) => void) {
  const start = performance.now();
  let done = 0;
  while (done < items.length) {
    const due = Math.min(
      items.length,
      Math.ceil(((performance.now() - start) / spreadMs) * items.length) || 1,
    );
    while (done < due) action(items[done++]!);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Runs one storm. Connections are spread round-robin over `endpoints` (one
 * isolate, or several nodes); `cpuPids` are the server processes to bill.
 */
export async function runPresenceStorm(
  endpoints: readonly RunningServer[],
  cpuPids: readonly number[],
  params: PresenceParams,
  tokens: readonly string[],
  room: string,
): Promise<PresenceResult> {
  const { existing, storm, spreadMs, timeoutMs, settleMs } = params;
  const per = (n: number, i: number) =>
    Math.floor(n / endpoints.length) + (i < n % endpoints.length ? 1 : 0);
  const members: Tracked[] = [];
  const joiners: Tracked[] = [];
  const all: BenchConnection[] = [];
  try {
    let offset = 0;
    for (const [i, server] of endpoints.entries()) {
      const e = per(existing, i);
      const s = per(storm, i);
      const conns = await connectMany(server, e + s, {
        tokens: tokens.slice(offset, offset + e + s),
      });
      offset += e + s;
      all.push(...conns);
      members.push(...conns.slice(0, e).map(track));
      joiners.push(...conns.slice(e).map(track));
    }
    // Members first, and settled: the storm is what we count.
    await Promise.all(members.map((m, i) => m.conn.request({ type: "join", room, id: `m${i}` })));
    await until(() => members.every((m) => m.count === existing), timeoutMs, "members settled");
    for (const m of members) m.frames = 0;
    const total = existing + storm;

    const cpu0 = await sumCpu(cpuPids);
    const joinStart = performance.now();
    await spread(joiners, spreadMs, (j) => j.conn.send({ type: "join", room, id: "j" }));
    const joinEnd = await until(
      () => members.every((m) => m.count === total) && joiners.every((j) => j.count === total),
      timeoutMs,
      `every connection at ${total}`,
    );
    // Frames still in a window when the count settled are part of the storm's cost.
    await new Promise((r) => setTimeout(r, settleMs));
    const joinFrames = members.reduce((sum, m) => sum + m.frames, 0) / members.length;
    for (const m of members) m.frames = 0;

    const leaveStart = performance.now();
    await spread(joiners, spreadMs, (j) => j.conn.close());
    const leaveEnd = await until(
      () => members.every((m) => m.count === existing),
      timeoutMs,
      `every member back at ${existing}`,
    );
    await new Promise((r) => setTimeout(r, settleMs));
    const cpu1 = await sumCpu(cpuPids);
    return {
      joinFramesPerMember: joinFrames,
      joinConvergeMs: joinEnd - joinStart,
      leaveFramesPerMember: members.reduce((sum, m) => sum + m.frames, 0) / members.length,
      leaveConvergeMs: leaveEnd - leaveStart,
      serverCpuMs: (cpu1 - cpu0) / 1000,
      errors: sumErrors(all),
    };
  } finally {
    await closeAll(all);
  }
}

async function sumCpu(pids: readonly number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) total += await cpuMicros(pid);
  return total;
}
