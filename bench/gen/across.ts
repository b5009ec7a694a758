/**
 * Across-instance load: one publisher and subscribers split between the
 * publisher's instance (isolate or process) and another one, told apart by
 * the `instanceId` of each `welcome`. The publisher sends at a light fixed
 * rate, so the latency difference between the two groups is the bus hop, not
 * queueing.
 *
 * @module
 */
import { LatencyRecorder } from "../_stats.ts";
import type { RunningServer } from "../_servers.ts";
import { type BenchConnection, closeAll, connect, joinAll } from "./_client.ts";
import { phase, sumErrors } from "./fanout.ts";

/** Parameters of one across-instance run. */
export interface AcrossParams {
  /** Subscribers, half on the publisher's instance and half on another. */
  subscribers: number;
  messages: number;
  /** Publish rate, messages per second: low, so latency is the hop and not a queue. */
  rate: number;
  /** Bound on connecting (placement is up to the kernel under `--parallel`) and on delivery. */
  timeoutMs: number;
}

/** What one across-instance run measured. */
export interface AcrossResult {
  sameP50Ms: number;
  sameP99Ms: number;
  otherP50Ms: number;
  otherP99Ms: number;
  /** Connections opened to place the subscribers (surplus ones are closed at once). */
  attempts: number;
  lost: number;
  errors: number;
}

/** Handshakes in flight while placing subscribers. */
const CONCURRENCY = 8;

/**
 * Connects round-robin over `endpoints` until `quota` subscribers sit on the
 * publisher's instance and `quota` on other ones. Under `deno serve
 * --parallel` the kernel picks the isolate, so a connection landing on a full
 * group is closed and another one tried; bounded in attempts and time.
 */
async function place(
  endpoints: readonly RunningServer[],
  publisher: BenchConnection,
  quota: number,
  tokens: readonly string[],
  timeoutMs: number,
): Promise<{ same: BenchConnection[]; other: BenchConnection[]; attempts: number }> {
  const home = publisher.welcome.instanceId;
  const same: BenchConnection[] = [];
  const other: BenchConnection[] = [];
  const maxAttempts = quota * 20 + 40;
  const deadline = performance.now() + timeoutMs;
  let attempts = 0;
  let failure: unknown;
  const full = () => same.length >= quota && other.length >= quota;
  const worker = async () => {
    while (failure === undefined && !full() && attempts < maxAttempts) {
      if (performance.now() > deadline) break;
      const i = attempts++;
      try {
        const conn = await connect(endpoints[(i + 1) % endpoints.length]!, {
          token: tokens[(i + 1) % tokens.length],
          timeoutMs,
        });
        const group = conn.welcome.instanceId === home ? same : other;
        if (group.length < quota) {
          group.push(conn);
          continue;
        }
        conn.close();
        // A second isolate may start taking connections only a while after
        // the first answered /healthz: give it that while.
        await new Promise((r) => setTimeout(r, 10));
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (failure !== undefined || !full()) {
    await closeAll([...same, ...other]);
    if (failure !== undefined) throw failure;
    throw new Error(
      `could not place ${quota} + ${quota} subscribers in ${attempts} connections: ` +
        `${same.length} landed on the publisher's instance, ${other.length} elsewhere`,
    );
  }
  return { same, other, attempts };
}

/**
 * Runs one measurement: publisher on `endpoints[0]`, subscribers placed
 * round-robin over `endpoints`, all in one room of their own.
 */
export async function runAcross(
  endpoints: readonly RunningServer[],
  params: AcrossParams,
  tokens: readonly string[],
): Promise<AcrossResult> {
  const { subscribers, messages, rate, timeoutMs } = params;
  // Fresh per run: a late frame of an earlier run cannot land in this one.
  const room = `across-${crypto.randomUUID()}`;
  const quota = Math.max(1, Math.floor(subscribers / 2));
  const publisher = await connect(endpoints[0]!, { token: tokens[0], timeoutMs });
  const conns: BenchConnection[] = [publisher];
  try {
    const { same, other, attempts } = await place(endpoints, publisher, quota, tokens, timeoutMs);
    conns.push(...same, ...other);
    // Joined before the publisher, so that a join acknowledged on one instance
    // is known to the bus before the first message is published on another.
    await joinAll([...same, ...other], () => room);
    await joinAll([publisher], () => room);

    const sameLatency = new LatencyRecorder();
    const otherLatency = new LatencyRecorder();
    const expected = messages * quota * 2;
    let delivered = 0;
    let onDelivery = () => {};
    const listen = (group: BenchConnection[], recorder: LatencyRecorder) => {
      for (const c of group) {
        c.onFrame = (frame, now) => {
          if (frame.type !== "message") return;
          recorder.add(now - (frame.payload as { t: number }).t);
          delivered++;
          onDelivery();
        };
      }
    };
    listen(same, sameLatency);
    listen(other, otherLatency);

    await phase(timeoutMs + (messages / rate) * 1000, (done) => {
      onDelivery = () => {
        if (delivered === expected) done();
      };
      const begin = performance.now();
      let seq = 0;
      // Scheduled against the start time so timer lateness does not lower the rate.
      const tick = () => {
        publisher.send({ type: "message", room, payload: { s: seq++, t: performance.now() } });
        if (seq < messages) {
          setTimeout(tick, Math.max(0, begin + (seq * 1000) / rate - performance.now()));
        }
      };
      tick();
    });
    return {
      sameP50Ms: sameLatency.percentile(50),
      sameP99Ms: sameLatency.percentile(99),
      otherP50Ms: otherLatency.percentile(50),
      otherP99Ms: otherLatency.percentile(99),
      attempts,
      lost: expected - delivered,
      errors: sumErrors(conns),
    };
  } finally {
    await closeAll(conns);
  }
}
