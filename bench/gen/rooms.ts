/**
 * Many-rooms load: R rooms of k members, every member publishing at a steady
 * rate into its own room (open loop), then a bounded drain.
 *
 * @module
 */
import { cpuMicros } from "../_proc.ts";
import { LatencyRecorder } from "../_stats.ts";
import type { RunningServer } from "../_servers.ts";
import { closeAll, connectMany, joinAll } from "./_client.ts";
import { phase, sumErrors } from "./fanout.ts";

/** Parameters of one many-rooms run. */
export interface RoomsParams {
  rooms: number;
  membersPerRoom: number;
  /** Messages per second each member publishes. */
  ratePerMember: number;
  durationMs: number;
  /** Bound on waiting for in-flight deliveries after publishing stops. */
  drainTimeoutMs: number;
}

/** What one many-rooms run measured. */
export interface RoomsResult {
  deliveriesPerSec: number;
  serverCpuUsPerDelivery: number;
  p50Ms: number;
  p99Ms: number;
  lost: number;
  errors: number;
}

/** Publishing is batched per timer tick; 5 ms keeps bursts small at any rate we use. */
const TICK_MS = 5;

/** Runs one many-rooms measurement against a started server. */
export async function runRooms(
  server: RunningServer,
  params: RoomsParams,
  tokens: readonly string[],
): Promise<RoomsResult> {
  const { rooms, membersPerRoom, ratePerMember, durationMs, drainTimeoutMs } = params;
  const total = rooms * membersPerRoom;
  const roomOf = (i: number) => `room-${i % rooms}`;
  const conns = await connectMany(server, total, { tokens });
  try {
    await joinAll(conns, roomOf);
    const latency = new LatencyRecorder();
    let delivered = 0;
    let sent = 0;
    let onDelivery = () => {};
    for (const c of conns) {
      c.onFrame = (frame, now) => {
        if (frame.type !== "message") return;
        latency.add(now - (frame.payload as { t: number }).t);
        delivered++;
        onDelivery();
      };
    }
    const cpu0 = await cpuMicros(server.pid);
    const start = performance.now();
    const perSec = total * ratePerMember;
    await phase(durationMs + 1000, (done) => {
      const timer = setInterval(() => {
        const elapsed = performance.now() - start;
        const due = Math.min(
          Math.floor((elapsed * perSec) / 1000),
          Math.floor((durationMs * perSec) / 1000),
        );
        // Round-robin over members so each publishes at ratePerMember.
        while (sent < due) {
          const i = sent++ % total;
          conns[i]!.send({
            type: "message",
            room: roomOf(i),
            payload: { s: sent, t: performance.now() },
          });
        }
        if (elapsed >= durationMs) {
          clearInterval(timer);
          done();
        }
      }, TICK_MS);
    });
    const expected = sent * membersPerRoom;
    await phase(drainTimeoutMs, (done) => {
      onDelivery = () => {
        if (delivered >= expected) done();
      };
      onDelivery();
    });
    const elapsed = performance.now() - start;
    const cpu1 = await cpuMicros(server.pid);
    return {
      deliveriesPerSec: (delivered / elapsed) * 1000,
      serverCpuUsPerDelivery: (cpu1 - cpu0) / delivered,
      p50Ms: latency.percentile(50),
      p99Ms: latency.percentile(99),
      lost: expected - delivered,
      errors: sumErrors(conns),
    };
  } finally {
    await closeAll(conns);
  }
}
