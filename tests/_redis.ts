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
import { createClient } from "@redis/client";

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

/** Options for {@linkcode SentinelSet.start}. */
export interface SentinelSetOptions {
  /** The primary's name in `sentinel monitor`. @default {"mymaster"} */
  name?: string;
  /** `down-after-milliseconds`: how long the primary may be silent before it is down. @default {1000} */
  downAfterMs?: number;
  /** `failover-timeout`. @default {3000} */
  failoverTimeoutMs?: number;
}

/**
 * A primary, one replica and three sentinels (quorum 2): `redis-server`
 * processes (the sentinels with `--sentinel`) on free loopback ports with
 * persistence off, their config files in a temporary directory. Disposable:
 * everything is stopped and removed.
 */
export class SentinelSet implements AsyncDisposable {
  /** The primary's name the sentinels monitor. */
  readonly name: string;
  /** Data nodes by port: the first is the primary at start, the second its replica. */
  readonly dataPorts: readonly number[];
  /** Sentinel ports. */
  readonly sentinelPorts: readonly number[];
  readonly #dir: string;
  readonly #children = new Map<number, Deno.ChildProcess>();

  private constructor(name: string, dir: string, data: number[], sentinels: number[]) {
    this.name = name;
    this.#dir = dir;
    this.dataPorts = data;
    this.sentinelPorts = sentinels;
  }

  /** `127.0.0.1:<port>,…` of the sentinels: `REDIS_SENTINELS`. */
  get sentinels(): string {
    return this.sentinelPorts.map((port) => `127.0.0.1:${port}`).join(",");
  }

  /**
   * Starts the five processes and resolves once the replica is in sync and
   * every sentinel knows it and the two other sentinels (so that a failover
   * can happen).
   */
  static async start(options: SentinelSetOptions = {}): Promise<SentinelSet> {
    const { name = "mymaster", downAfterMs = 1000, failoverTimeoutMs = 3000 } = options;
    const binary = redisServerPath;
    if (binary === undefined) throw new Error(`redis-server is not on PATH: ${INSTALL_HINT}`);
    const dir = await Deno.makeTempDir({ prefix: "sentinel-test-" });
    const ports = Array.from({ length: 5 }, () => freePort());
    const set = new SentinelSet(name, dir, ports.slice(0, 2), ports.slice(2));
    try {
      const [primary, replica] = set.dataPorts as [number, number];
      // No delay before a diskless full sync (it waits 5 s for more replicas by
      // default), and the replica's copy of the data set kept in our directory.
      const data = [
        ...["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
        ...["--repl-diskless-sync-delay", "0", "--repl-diskless-load", "on-empty-db"],
      ];
      await set.#spawn(binary, ["--port", String(primary), ...data], primary);
      await set.#spawn(
        binary,
        ["--port", String(replica), ...data, "--replicaof", "127.0.0.1", String(primary)],
        replica,
      );
      for (const port of set.sentinelPorts) {
        const file = `${dir}/sentinel-${port}.conf`;
        await Deno.writeTextFile(
          file,
          [
            `port ${port}`,
            "bind 127.0.0.1",
            `dir ${dir}`,
            `sentinel monitor ${name} 127.0.0.1 ${primary} 2`,
            `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
            `sentinel failover-timeout ${name} ${failoverTimeoutMs}`,
            `sentinel parallel-syncs ${name} 1`,
            "",
          ].join("\n"),
        );
        await set.#spawn(binary, [file, "--sentinel"], port);
      }
      await set.#untilTopologyKnown();
      return set;
    } catch (err) {
      await set[Symbol.asyncDispose]();
      throw err;
    }
  }

  /** SIGKILL to the process on `port` (no goodbye to anyone); resolves once it exited. */
  async kill(port: number): Promise<void> {
    const child = this.#children.get(port);
    if (child === undefined) return;
    this.#children.delete(port);
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
  }

  /** The primary's port as the first sentinel names it now. */
  async primaryPort(): Promise<number> {
    const reply = await redisCall(this.sentinelPorts[0]!, [
      "SENTINEL",
      "get-master-addr-by-name",
      this.name,
    ]);
    return Number((reply as string[])[1]);
  }

  /** Stops every process and removes the config files. */
  async [Symbol.asyncDispose](): Promise<void> {
    const children = [...this.#children.values()];
    this.#children.clear();
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
    }
    await Promise.all(children.map((child) => child.status));
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  async #spawn(binary: string, args: string[], port: number): Promise<void> {
    await spawnRedisProcess(binary, args, port, (child) => this.#children.set(port, child));
  }

  async #untilTopologyKnown(): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const known = await Promise.all(this.sentinelPorts.map(async (port) => {
        const replicas = await redisCall(port, ["SENTINEL", "replicas", this.name]);
        const sentinels = await redisCall(port, ["SENTINEL", "sentinels", this.name]);
        return (replicas as unknown[]).length === 1 && (sentinels as unknown[]).length === 2;
      }));
      const replication = String(await redisCall(this.dataPorts[1]!, ["INFO", "replication"]));
      if (known.every(Boolean) && replication.includes("master_link_status:up")) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error("the replica did not sync, or the sentinels did not learn it, within 30 s");
  }
}

/** Sends one command to the node (or sentinel) on `port` over a fresh connection. */
export async function redisCall(port: number, args: string[]): Promise<unknown> {
  const client = createClient({
    socket: { host: "127.0.0.1", port, connectTimeout: 2000, reconnectStrategy: false },
  });
  client.on("error", () => {});
  try {
    await client.connect();
    return await client.sendCommand(args);
  } finally {
    try {
      client.destroy();
    } catch {
      // Never opened.
    }
  }
}

/**
 * main.ts on the Redis bus and stores through the sentinels of `set`
 * (`REDIS_SENTINELS`, `REDIS_SENTINEL_NAME`; `REDIS_URL` unset), as
 * {@linkcode startRedisNode} does for one Redis.
 */
export function startSentinelNode(
  set: SentinelSet,
  busChannel: string,
  options: RedisNodeOptions = {},
): Promise<ServerProcess> {
  const { env = {}, ...rest } = options;
  return startRedisNode("", busChannel, {
    ...rest,
    // Empty counts as unset: the sentinels name the primary.
    env: { REDIS_SENTINELS: set.sentinels, REDIS_SENTINEL_NAME: set.name, ...env },
  });
}

/**
 * Starts `binary args` (a redis-server, sentinel or cluster node on `port`)
 * with its output discarded, hands the child to `started` at once (so the
 * caller can kill it whatever happens next), and resolves once it answers
 * PING; rejects after 10 s.
 */
export async function spawnRedisProcess(
  binary: string,
  args: string[],
  port: number,
  started: (child: Deno.ChildProcess) => void,
): Promise<void> {
  const child = new Deno.Command(binary, {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  started(child);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      if (await redisCall(port, ["PING"]) === "PONG") return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`${binary} ${args.join(" ")} did not answer PING within 10 s`);
}
