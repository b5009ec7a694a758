/**
 * Generator of the hook rows (bench/scenarios/hooks.ts): a minimal backend
 * on loopback in this process (every join allowed with a cache, every
 * publish allowed), and one client that joins (then leaves) or publishes
 * one request at a time, so each figure is a round trip: p50/p99 of request
 * → answer, and the server's CPU (/proc) per request.
 *
 * @module
 */
import { SignJWT } from "jose";
import { cpuMicros } from "../_proc.ts";
import { LatencyRecorder } from "../_stats.ts";
import { BENCH_HS256_SECRET } from "../_tokens.ts";
import type { RunningServer } from "../_servers.ts";
import { type BenchConnection, connect } from "./_client.ts";

/** Secret that signs hook requests (`WEBHOOK_SECRET`); the bench backend does not check it. */
export const BENCH_HOOK_SECRET = "bench-only-hook-secret-not-for-production-0123";

/** Rooms the token grants: the join hook is not asked. */
export const OPEN_PREFIX = "open:";
/** Rooms only the join hook grants. */
export const PRIVATE_PREFIX = "priv:";
/** Rooms the policy sends to the publish hook (the token grants them). */
export const HOOKED_PREFIX = "hooked:";

/** Sizes of one hook measurement. */
export interface HookBenchParams {
  /** Joins per run and row (each followed by a leave). */
  joins: number;
  /** Publishes per run and row, each waiting for its `ack`. */
  publishes: number;
  /** @default per request */
  timeoutMs: number;
}

/** The loopback backend: answers `/join` and `/publish`, counts calls. */
export interface BenchHookBackend extends AsyncDisposable {
  readonly url: string;
  /** Calls answered so far, by path. */
  readonly calls: { join: number; publish: number };
}

/** Starts the backend on a free loopback port. */
export function startBenchHookBackend(): BenchHookBackend {
  const calls = { join: 0, publish: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    await req.body?.cancel();
    const path = new URL(req.url).pathname;
    if (path === "/join") {
      calls.join++;
      return Response.json({ allow: true, cacheSec: 3600 });
    }
    if (path === "/publish") {
      calls.publish++;
      return Response.json({ allow: true });
    }
    return new Response(null, { status: 404 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    calls,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/** The environment of the server with hooks: the join and publish hooks, and the policy file. */
export function hookedServerEnv(backendUrl: string, policyPath: string): Record<string, string> {
  return {
    WEBHOOK_SECRET: BENCH_HOOK_SECRET,
    HOOK_JOIN_URL: `${backendUrl}/join`,
    HOOK_PUBLISH_URL: `${backendUrl}/publish`,
    ROOM_POLICY: policyPath,
  };
}

/** The policy: `hooked:*` messages go to the publish hook first. */
export const HOOK_POLICY = JSON.stringify({ rooms: [{ room: `${HOOKED_PREFIX}*`, hook: true }] });

/** A token granting `open:*` and `hooked:*`, not `priv:*` (asked of the join hook). */
export async function hookBenchToken(sub: string): Promise<string> {
  return await new SignJWT({ rooms: [`${OPEN_PREFIX}*`, `${HOOKED_PREFIX}*`] })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + 3600)
    .sign(new TextEncoder().encode(BENCH_HS256_SECRET));
}

/** One run's figures: latency percentiles (ms) and server CPU µs per request. */
export interface HookRunResult {
  p50: number;
  p99: number;
  serverCpuUs: number;
}

async function timed(
  server: RunningServer,
  count: number,
  step: (i: number) => Promise<void>,
): Promise<HookRunResult> {
  const latencies = new LatencyRecorder();
  const before = await cpuMicros(server.pid);
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await step(i);
    latencies.add(performance.now() - t0);
  }
  const after = await cpuMicros(server.pid);
  return {
    p50: latencies.percentile(50),
    p99: latencies.percentile(99),
    serverCpuUs: (after - before) / count,
  };
}

async function expect(
  conn: BenchConnection,
  message: Record<string, unknown> & { id: string },
  type: string,
  timeoutMs: number,
): Promise<void> {
  const reply = await conn.request(message, timeoutMs);
  if (reply.type !== type) throw new Error(`${String(message.type)}: ${JSON.stringify(reply)}`);
}

/**
 * `joins` joins (each answered `joined`, then left) of rooms named
 * `prefix<i>`, timed one at a time; the leave is outside the figure.
 */
export async function joinRun(
  server: RunningServer,
  p: HookBenchParams,
  options: { token: string; prefix: string },
): Promise<HookRunResult> {
  const conn = await connect(server, { token: options.token });
  try {
    const latencies = new LatencyRecorder();
    const before = await cpuMicros(server.pid);
    for (let i = 0; i < p.joins; i++) {
      const room = `${options.prefix}${i}`;
      const t0 = performance.now();
      await expect(conn, { type: "join", room, id: `j${i}` }, "joined", p.timeoutMs);
      latencies.add(performance.now() - t0);
      await expect(conn, { type: "leave", room, id: `l${i}` }, "left", p.timeoutMs);
    }
    const after = await cpuMicros(server.pid);
    return {
      p50: latencies.percentile(50),
      p99: latencies.percentile(99),
      serverCpuUs: (after - before) / p.joins,
    };
  } finally {
    conn.close();
    await conn.closed;
  }
}

/** `publishes` messages to `room`, each awaited to its `ack`, timed one at a time. */
export async function publishRun(
  server: RunningServer,
  p: HookBenchParams,
  options: { token: string; room: string },
): Promise<HookRunResult> {
  const conn = await connect(server, { token: options.token });
  try {
    await expect(conn, { type: "join", room: options.room, id: "j" }, "joined", p.timeoutMs);
    return await timed(server, p.publishes, async (i) => {
      const message = { type: "message", room: options.room, payload: { i }, id: `m${i}` };
      await expect(conn, message, "ack", p.timeoutMs);
    });
  } finally {
    conn.close();
    await conn.closed;
  }
}
