/**
 * Handshake load: open a connection, wait until it is usable, close it; a
 * fixed number of workers keep that going until `count` handshakes are done.
 * Plain WebSocket: usable = `101 Switching Protocols`, from a raw TCP client
 * (ours verifies the JWT before upgrading).
 * Socket.IO: usable = `connect` (its own CONNECT round trip included).
 *
 * @module
 */
import { io } from "socket.io-client";
import { WebSocket as EngineIoWebSocket } from "engine.io-client";
import { cpuMicros } from "../_proc.ts";
import { LatencyRecorder } from "../_stats.ts";
import type { RunningServer } from "../_servers.ts";
import { rawUpgrade } from "./_raw_upgrade.ts";

/** Parameters of one handshake run. */
export interface HandshakeParams {
  count: number;
  concurrency: number;
  /** Bound on one handshake. */
  timeoutMs: number;
}

/** What one handshake run measured. */
export interface HandshakeResult {
  perSec: number;
  serverCpuUsPerHandshake: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
}

/** Resolves when the connection is usable, with a function that closes it and waits. */
function handshake(
  server: RunningServer,
  token: string | undefined,
  timeoutMs: number,
): Promise<() => Promise<void>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new Error(`handshake timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    let settled = false;
    let close = () => {};
    const fail = (err: Error) => {
      clearTimeout(timer);
      close();
      if (!settled) reject(err);
      settled = true;
    };
    if (server.spec.client === "socketio") {
      const socket = io(server.httpUrl, {
        transports: [EngineIoWebSocket],
        forceNew: true,
        reconnection: false,
        auth: token === undefined ? {} : { token },
      });
      close = () => socket.disconnect();
      const gone = new Promise<void>((r) => socket.once("disconnect", () => r()));
      socket.once("connect", () => {
        clearTimeout(timer);
        settled = true;
        resolve(() => (close(), gone));
      });
      socket.once("connect_error", (err: Error) => fail(err));
    } else {
      const url = new URL(server.wsUrl(token));
      rawUpgrade(server.port, url.pathname + url.search, timeoutMs).then((upgrade) => {
        if (settled) return void upgrade.close();
        clearTimeout(timer);
        settled = true;
        resolve(() => upgrade.close());
      }, fail);
    }
  });
}

/** Runs `count` handshakes with `tokens[i]` (or none) and measures rate and latency. */
export async function runHandshakes(
  server: RunningServer,
  params: HandshakeParams,
  tokens: readonly string[],
): Promise<HandshakeResult> {
  const { count, concurrency, timeoutMs } = params;
  const latency = new LatencyRecorder();
  const closing: Promise<void>[] = [];
  let next = 0;
  let failed = 0;
  const cpu0 = await cpuMicros(server.pid);
  const start = performance.now();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const t = performance.now();
      try {
        const close = await handshake(server, tokens[i], timeoutMs);
        latency.add(performance.now() - t);
        closing.push(close());
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  const elapsed = performance.now() - start;
  const cpu1 = await cpuMicros(server.pid);
  // Bounded wait for closes, so they are not billed to the next run.
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([Promise.all(closing), new Promise((r) => timer = setTimeout(r, 5000))]);
  clearTimeout(timer);
  return {
    perSec: ((count - failed) / elapsed) * 1000,
    serverCpuUsPerHandshake: (cpu1 - cpu0) / Math.max(1, count - failed),
    p50Ms: latency.percentile(50),
    p99Ms: latency.percentile(99),
    failed,
  };
}
