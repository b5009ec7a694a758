/**
 * A throwaway `redis-server` for the across-processes row: a free loopback
 * port, persistence off, ready once it answers PING, stopped on every path.
 * And a throwaway Redis Cluster of 1 to n primaries (no replicas) for the
 * Cluster rows: each node given its share of the slots and introduced to
 * the first (`CLUSTER ADDSLOTSRANGE`, `CLUSTER MEET`), which works for one
 * or two primaries too, unlike `redis-cli --cluster create`.
 *
 * @module
 */
import { findOnPath } from "./_servers.ts";

/** Options for {@linkcode startRedis}. */
export interface RedisOptions {
  /** @default 10000 */
  readyTimeoutMs?: number;
}

/** A running `redis-server`. */
export interface RunningRedis {
  /** `redis://127.0.0.1:<port>` */
  url: string;
  /** Process id, for its CPU time in /proc. */
  pid: number;
  /** SIGTERM (SIGKILL after 3 s) and wait for exit; idempotent. */
  close(): Promise<void>;
}

/** Absolute path of `redis-server`, or undefined when it is not installed. */
export function redisServerPath(): Promise<string | undefined> {
  return findOnPath("redis-server");
}

const running = new Set<RunningRedis>();

/** Stops every Redis still running (on Ctrl-C, the watchdog or a crash of the orchestrator). */
export async function closeAllRedis(): Promise<void> {
  await Promise.all([...running].map((r) => r.close()));
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** True when a Redis on `port` answers an inline PING with +PONG. */
async function pong(port: number): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buffer = new Uint8Array(64);
    const n = await conn.read(buffer);
    return n !== null && new TextDecoder().decode(buffer.subarray(0, n)).startsWith("+PONG");
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}

/**
 * Starts `binary` on a free loopback port and waits until it answers PING.
 *
 * @example
 * ```ts ignore
 * const redis = await startRedis("/usr/bin/redis-server");
 * try {
 *   // BUS=redis REDIS_URL=redis.url
 * } finally {
 *   await redis.close();
 * }
 * ```
 */
export async function startRedis(
  binary: string,
  options: RedisOptions & { port?: number; args?: string[] } = {},
): Promise<RunningRedis> {
  const { readyTimeoutMs = 10_000, port = freePort(), args = [] } = options;
  const child = new Deno.Command(binary, {
    // No persistence: nothing is written outside the process, nothing to clean up.
    args: [
      ...["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      ...args,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  let closing: Promise<void> | undefined;
  const redis: RunningRedis = {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid,
    close() {
      closing ??= (async () => {
        if (exited) return;
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* already gone */ }
        }, 3000);
        await status;
        clearTimeout(timer);
      })().finally(() => running.delete(redis));
      return closing;
    },
  };
  running.add(redis);
  const deadline = Date.now() + readyTimeoutMs;
  while (!exited && Date.now() < deadline) {
    if (await pong(port)) return redis;
    await new Promise((r) => setTimeout(r, 25));
  }
  await redis.close();
  throw new Error(
    `redis-server ${exited ? "exited" : `did not answer PING within ${readyTimeoutMs} ms`}` +
      ` on port ${port}`,
  );
}

/** A running Redis Cluster. */
export interface RunningCluster {
  /** `127.0.0.1:<port>,…`: `REDIS_CLUSTER_NODES`. */
  nodes: string;
  /** The nodes as the stores take them. */
  target: { cluster: { host: string; port: number }[]; password: undefined };
  /** Process ids, for their CPU time in /proc. */
  pids: number[];
  /** Stops every node and removes their directory. */
  close(): Promise<void>;
}

/** Sends one inline command and returns the reply's text (enough for the replies read here). */
async function inline(port: number, command: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(`${command}\r\n`));
    const buffer = new Uint8Array(8192);
    const n = await conn.read(buffer);
    return n === null ? "" : new TextDecoder().decode(buffer.subarray(0, n));
  } finally {
    conn.close();
  }
}

/** A free port whose cluster-bus port (+10000) is free too. */
function clusterPort(taken: readonly number[]): number {
  for (let tries = 0; tries < 100; tries++) {
    const port = freePort();
    if (port + 10_000 > 65_535 || taken.some((p) => Math.abs(p - port) === 10_000)) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port: port + 10_000 }).close();
      return port;
    } catch {
      // Its bus port is taken: try another.
    }
  }
  throw new Error("no free port pair for a cluster node");
}

/**
 * Starts a Redis Cluster of `primaries` nodes, each serving an equal range of
 * the 16,384 slots, and waits until every node says `cluster_state:ok`.
 */
export async function startRedisCluster(
  binary: string,
  primaries: number,
  readyTimeoutMs = 20_000,
): Promise<RunningCluster> {
  const dir = await Deno.makeTempDir({ prefix: "bench-cluster-" });
  const ports: number[] = [];
  for (let i = 0; i < primaries; i++) ports.push(clusterPort(ports));
  const nodes = await Promise.allSettled(ports.map((port) =>
    startRedis(binary, {
      port,
      args: [
        ...["--cluster-enabled", "yes", "--cluster-config-file", `${dir}/nodes-${port}.conf`],
        ...["--cluster-node-timeout", "2000", "--dir", dir],
      ],
    })
  ));
  const started = nodes.flatMap((n) => n.status === "fulfilled" ? [n.value] : []);
  const close = async () => {
    await Promise.all(started.map((node) => node.close()));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const failed = nodes.find((n) => n.status === "rejected");
    if (failed) throw failed.reason;
    const per = Math.ceil(16_384 / primaries);
    for (const [i, port] of ports.entries()) {
      const last = Math.min(16_383, (i + 1) * per - 1);
      await inline(port, `CLUSTER ADDSLOTSRANGE ${i * per} ${last}`);
      if (i > 0) await inline(ports[0]!, `CLUSTER MEET 127.0.0.1 ${port}`);
    }
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      const states = await Promise.all(ports.map((port) => inline(port, "CLUSTER INFO")));
      const known = await Promise.all(ports.map((port) => inline(port, "CLUSTER NODES")));
      const ok = states.every((s) => s.includes("cluster_state:ok")) &&
        known.every((k) => k.trim().split("\n").length >= primaries);
      if (ok) break;
      if (Date.now() > deadline) {
        throw new Error(`the cluster was not ok within ${readyTimeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    nodes: ports.map((port) => `127.0.0.1:${port}`).join(","),
    target: { cluster: ports.map((port) => ({ host: "127.0.0.1", port })), password: undefined },
    pids: started.map((node) => node.pid),
    close,
  };
}
