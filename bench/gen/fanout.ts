/**
 * Fan-out load: N subscribers and one publisher in one room. A saturating
 * phase keeps a small window of messages in flight (closed loop, so queues
 * stay bounded and latency means something), then a light phase publishes at
 * a fixed low rate.
 *
 * @module
 */
import { cpuMicros, selfCpuMicros } from "../_proc.ts";
import { LatencyRecorder } from "../_stats.ts";
import type { RunningServer } from "../_servers.ts";
import { type BenchConnection, closeAll, connectMany, joinAll } from "./_client.ts";

/** Parameters of one fan-out run. */
export interface FanoutParams {
  subscribers: number;
  /** Messages in the saturating phase. */
  messages: number;
  /** Messages in flight in the saturating phase (a message is done when every member has it). */
  window: number;
  /** Messages in the light phase. */
  lightMessages: number;
  /** Publish rate of the light phase, messages per second. */
  lightRate: number;
  /** Bound on each phase. */
  phaseTimeoutMs: number;
}

/** What one fan-out run measured. */
export interface FanoutResult {
  deliveriesPerSec: number;
  serverCpuUsPerDelivery: number;
  /** Generator CPU per delivery: when it nears 1e6 / deliveriesPerSec, the generator is the bottleneck. */
  generatorCpuUsPerDelivery: number;
  satP50Ms: number;
  satP99Ms: number;
  lightP50Ms: number;
  lightP99Ms: number;
  /** Connecting and joining the members this size added to the previous size's. */
  connectMs: number;
  /** Deliveries that never arrived before the phase timeout. */
  lost: number;
  errors: number;
}

interface Payload {
  /** Room size the message belongs to: a straggler of a timed-out size is not counted in the next. */
  n: number;
  s: number;
  t: number;
}

/**
 * Runs the fan-out measurement for each size, smallest first, on one growing
 * set of connections: a size is measured on exactly its members, and the next
 * size adds the connections it lacks instead of reconnecting them all
 * (connecting is most of a run's wall time).
 */
export async function runFanoutSizes(
  server: RunningServer,
  sizes: readonly FanoutParams[],
  tokens: readonly string[],
): Promise<FanoutResult[]> {
  const ordered = [...sizes].sort((a, b) => a.subscribers - b.subscribers);
  const conns: BenchConnection[] = [];
  const results = new Map<FanoutParams, FanoutResult>();
  try {
    for (const params of ordered) {
      const t0 = performance.now();
      const more = params.subscribers + 1 - conns.length;
      if (more > 0) {
        const added = await connectMany(server, more, { tokens: tokens.slice(conns.length) });
        conns.push(...added);
        await joinAll(added, () => "bench");
      }
      const connectMs = performance.now() - t0;
      const members = conns.slice(0, params.subscribers + 1);
      results.set(params, await measureSize(server, members, params, connectMs));
    }
  } finally {
    await closeAll(conns);
  }
  return sizes.map((p) => results.get(p)!);
}

/** Saturated then light phase on `conns` (all joined to the room; the last one publishes). */
async function measureSize(
  server: RunningServer,
  conns: readonly BenchConnection[],
  params: FanoutParams,
  connectMs: number,
): Promise<FanoutResult> {
  const { subscribers, messages, window, lightMessages, lightRate, phaseTimeoutMs } = params;
  const members = subscribers + 1;
  const publisher = conns[subscribers]!;
  const counts = new Uint32Array(messages + lightMessages);
  const sat = new LatencyRecorder();
  const light = new LatencyRecorder();
  let delivered = 0;
  let onComplete: () => void = () => {};
  const onFrame = (frame: { type?: unknown; payload?: unknown }, now: number) => {
    if (frame.type !== "message") return;
    const p = frame.payload as Payload;
    if (p.n !== subscribers) return;
    (p.s < messages ? sat : light).add(now - p.t);
    delivered++;
    if (++counts[p.s]! === members) onComplete();
  };
  for (const c of conns) c.onFrame = onFrame;
  const errorsBefore = sumErrors(conns);
  const publish = (seq: number) =>
    publisher.send({
      type: "message",
      room: "bench",
      payload: { n: subscribers, s: seq, t: performance.now() } satisfies Payload,
    });

  const cpu0 = await cpuMicros(server.pid);
  const gen0 = await selfCpuMicros();
  const start = performance.now();
  let sent = 0;
  let completed = 0;
  await phase(phaseTimeoutMs, (done) => {
    const pump = () => {
      while (sent < messages && sent - completed < window) publish(sent++);
    };
    onComplete = () => {
      if (++completed === messages) done();
      else pump();
    };
    pump();
  });
  const elapsed = performance.now() - start;
  const satDelivered = delivered;
  const cpu1 = await cpuMicros(server.pid);
  const gen1 = await selfCpuMicros();

  completed = 0;
  await phase(phaseTimeoutMs + (lightMessages / lightRate) * 1000, (done) => {
    onComplete = () => {
      if (++completed === lightMessages) done();
    };
    const begin = performance.now();
    let seq = 0;
    // Scheduled against the start time so timer lateness does not lower the rate.
    const tick = () => {
      publish(messages + seq++);
      if (seq < lightMessages) {
        setTimeout(tick, Math.max(0, begin + (seq * 1000) / lightRate - performance.now()));
      }
    };
    tick();
  });

  return {
    deliveriesPerSec: (satDelivered / elapsed) * 1000,
    serverCpuUsPerDelivery: (cpu1 - cpu0) / satDelivered,
    generatorCpuUsPerDelivery: (gen1 - gen0) / satDelivered,
    satP50Ms: sat.percentile(50),
    satP99Ms: sat.percentile(99),
    lightP50Ms: light.percentile(50),
    lightP99Ms: light.percentile(99),
    connectMs,
    lost: (messages + lightMessages) * members - delivered,
    errors: sumErrors(conns) - errorsBefore,
  };
}

/** Error frames received across connections. */
export function sumErrors(conns: readonly BenchConnection[]): number {
  return conns.reduce((n, c) => n + c.errors, 0);
}

/**
 * Runs `body` until it calls `done` or `timeoutMs` passes; a timeout is not an
 * error here, the caller counts what was lost.
 */
export function phase(timeoutMs: number, body: (done: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    body(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
