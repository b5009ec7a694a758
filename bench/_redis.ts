/**
 * A throwaway `redis-server` for the across-processes row: a free loopback
 * port, persistence off, ready once it answers PING, stopped on every path.
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
  options: RedisOptions = {},
): Promise<RunningRedis> {
  const { readyTimeoutMs = 10_000 } = options;
  const port = freePort();
  const child = new Deno.Command(binary, {
    // No persistence: nothing is written outside the process, nothing to clean up.
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
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
