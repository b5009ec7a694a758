/**
 * A throwaway `redis-server` for tests: started on a free loopback port with
 * persistence off, stopped and restarted on the same port to simulate an
 * outage, and spoken to over raw RESP to inject messages no bus would send.
 *
 * Tests declared with {@linkcode redisTest} are skipped (with a message)
 * when `redis-server` is missing, and fail when `CI` is set, so CI cannot
 * silently lose Redis coverage.
 *
 * @module
 */
import {
  findOnPath,
  freePort,
  type ServerProcess,
  type SpawnParallelOptions,
  spawnServer,
} from "./_process.ts";

const INSTALL_HINT = "install it with `apt-get install redis-server`";

/** Absolute path of `redis-server` on PATH, if any. */
export const redisServerPath: string | undefined = findOnPath("redis-server");

const inCi = (Deno.env.get("CI") ?? "") !== "";
/** True when Redis tests cannot run here and should be skipped. */
export const skipRedis: boolean = redisServerPath === undefined && !inCi;
if (skipRedis) {
  console.warn(`Skipping Redis tests: redis-server is not on PATH (${INSTALL_HINT}).`);
}

/**
 * Declares a test that gets a fresh Redis server, stopped afterwards even when
 * the test fails.
 */
export function redisTest(name: string, fn: (redis: RedisServer) => Promise<void>): void {
  Deno.test({
    name,
    ignore: skipRedis,
    async fn() {
      if (redisServerPath === undefined) {
        throw new Error(`CI is set but redis-server is not on PATH: ${INSTALL_HINT}`);
      }
      await using redis = await RedisServer.start(redisServerPath);
      await fn(redis);
    },
  });
}

/**
 * A running (or stopped, for now) `redis-server` subprocess. Disposable:
 * `await using redis = await RedisServer.start(path)` stops it at scope end.
 */
export class RedisServer implements AsyncDisposable {
  readonly port: number;
  readonly #binary: string;
  #child: Deno.ChildProcess | undefined;

  private constructor(binary: string, port: number) {
    this.#binary = binary;
    this.port = port;
  }

  /** Starts a server on a free port and waits until it answers PING. */
  static async start(binary: string): Promise<RedisServer> {
    const server = new RedisServer(binary, freePort());
    await server.restart();
    return server;
  }

  /** `redis://127.0.0.1:<port>` */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** (Re)starts the server on its port and waits until it answers PING. */
  async restart(): Promise<void> {
    if (this.#child !== undefined) throw new Error("redis-server is already running");
    const child = new Deno.Command(this.#binary, {
      args: [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.#child = child;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try {
        if (await this.command("PING") === "+PONG") return;
      } catch {
        // Not listening yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await this.stop();
    throw new Error(`redis-server did not answer PING on port ${this.port} within 10 s`);
  }

  /** Stops the server (SIGTERM) and waits for it to exit; idempotent. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill("SIGCONT");
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await child.status;
  }

  /** Stops the server; see {@linkcode RedisServer.stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Freezes the server (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void {
    this.#child?.kill("SIGSTOP");
  }

  /** Lets a paused server go on (SIGCONT). */
  resume(): void {
    this.#child?.kill("SIGCONT");
  }

  /**
   * Sends one command over a fresh connection and returns the first reply
   * line (`+PONG`, `:1`, `-ERR ...`).
   */
  async command(...args: string[]): Promise<string> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
    try {
      const encoder = new TextEncoder();
      const parts = args.map((a) => `$${encoder.encode(a).length}\r\n${a}\r\n`);
      const request = encoder.encode(`*${args.length}\r\n${parts.join("")}`);
      for (let written = 0; written < request.length;) {
        written += await conn.write(request.subarray(written));
      }
      const decoder = new TextDecoder();
      const buffer = new Uint8Array(4096);
      let reply = "";
      while (!reply.includes("\r\n")) {
        const n = await conn.read(buffer);
        if (n === null) break;
        reply += decoder.decode(buffer.subarray(0, n), { stream: true });
      }
      return reply.split("\r\n")[0] ?? "";
    } finally {
      conn.close();
    }
  }
}

/** Options for {@linkcode startRedisNode}: those of a spawned server, plus its environment. */
export type RedisNodeOptions = SpawnParallelOptions & {
  /** Variables added last (set `JWT_SECRET` here); they may override any default. */
  env?: Record<string, string>;
};

/**
 * `deno task start` (main.ts in a subprocess, with the network, environment
 * and read permissions only) on the Redis bus at `redisUrl` and channel
 * `busChannel`, on a free loopback port, logging errors only.
 *
 * @example
 * ```ts ignore
 * await using node = await startRedisNode(redis.url, "chan", { env: { JWT_SECRET: SECRET } });
 * ```
 */
export function startRedisNode(
  redisUrl: string,
  busChannel: string,
  options: RedisNodeOptions = {},
): Promise<ServerProcess> {
  const { port = freePort(), env = {}, ...rest } = options;
  return spawnServer(["run", "--allow-net", "--allow-env", "--allow-read", "main.ts"], {
    ...rest,
    port,
    env: {
      HOSTNAME: "127.0.0.1",
      LOG_LEVEL: "error",
      PORT: String(port),
      BUS: "redis",
      REDIS_URL: redisUrl,
      BUS_CHANNEL: busChannel,
      ...env,
    },
  });
}
