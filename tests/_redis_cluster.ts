/**
 * A throwaway Redis Cluster for tests: `redis-server --cluster-enabled yes`
 * processes on free loopback ports (each also needs its port + 10000 free,
 * for the cluster bus), joined with `redis-cli --cluster create
 * --cluster-yes`, with persistence off and a short `cluster-node-timeout`
 * so that a failover takes a second or two. `cluster-require-full-coverage
 * no`, as the README advises, so that the other shards keep answering while
 * one fails over. Every wait is bounded; disposing kills every process and
 * removes the directory.
 *
 * @module
 */
import { freePort } from "./_process.ts";
import { redisCall, redisServerPath, spawnRedisProcess } from "./_redis.ts";
import { findOnPath } from "./_process.ts";

/** Absolute path of `redis-cli` on PATH, if any. */
export const redisCliPath: string | undefined = findOnPath("redis-cli");

/** Options for {@linkcode RedisCluster.start}. */
export interface RedisClusterOptions {
  /** Primaries (shards). @default {3} */
  primaries?: number;
  /** Replicas per primary. @default {0} */
  replicas?: number;
  /** `cluster-node-timeout`: how long a node may be silent before it is failed. @default {1000} */
  nodeTimeoutMs?: number;
}

/** One node of the cluster as `CLUSTER SLOTS` and `ROLE` see it. */
export interface ClusterNodeInfo {
  port: number;
  role: "master" | "slave";
}

const READY_TIMEOUT_MS = 20_000;

/** A running Redis Cluster. Disposable: `await using cluster = await RedisCluster.start()`. */
export class RedisCluster implements AsyncDisposable {
  /** Every node's port, primaries first (as `--cluster create` assigns them). */
  readonly ports: readonly number[];
  readonly #dir: string;
  readonly #children = new Map<number, Deno.ChildProcess>();

  private constructor(dir: string, ports: number[]) {
    this.#dir = dir;
    this.ports = ports;
  }

  /** `127.0.0.1:<port>,…` of every node: `REDIS_CLUSTER_NODES`. */
  get nodes(): string {
    return this.ports.map((port) => `127.0.0.1:${port}`).join(",");
  }

  /** Where the nodes are, as the config gives them to the link. */
  get target(): { cluster: { host: string; port: number }[]; password: undefined } {
    return {
      cluster: this.ports.map((port) => ({ host: "127.0.0.1", port })),
      password: undefined,
    };
  }

  /** Starts the nodes, creates the cluster and waits until every node says `cluster_state:ok`. */
  static async start(options: RedisClusterOptions = {}): Promise<RedisCluster> {
    const { primaries = 3, replicas = 0, nodeTimeoutMs = 1000 } = options;
    const binary = redisServerPath;
    if (binary === undefined || redisCliPath === undefined) {
      throw new Error("redis-server and redis-cli must be on PATH for Redis Cluster tests");
    }
    const dir = await Deno.makeTempDir({ prefix: "redis-cluster-test-" });
    const ports = clusterPorts(primaries * (1 + replicas));
    const cluster = new RedisCluster(dir, ports);
    try {
      await Promise.all(ports.map((port) => cluster.#spawn(binary, port, nodeTimeoutMs)));
      const create = await new Deno.Command(redisCliPath, {
        args: [
          "--cluster",
          "create",
          ...ports.map((port) => `127.0.0.1:${port}`),
          "--cluster-replicas",
          String(replicas),
          "--cluster-yes",
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!create.success) {
        throw new Error(
          `redis-cli --cluster create failed: ${new TextDecoder().decode(create.stdout)}`,
        );
      }
      await cluster.untilHealthy();
      return cluster;
    } catch (err) {
      await cluster[Symbol.asyncDispose]();
      throw err;
    }
  }

  /**
   * Resolves once every running node reports `cluster_state:ok`, every slot
   * is served, and each replica is in sync; throws after `timeoutMs`.
   */
  async untilHealthy(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const states = await Promise.all([...this.#children.keys()].map(async (port) => {
        const info = String(await redisCall(port, ["CLUSTER", "INFO"]).catch(() => ""));
        const replication = String(await redisCall(port, ["INFO", "replication"]).catch(() => ""));
        return info.includes("cluster_state:ok") && info.includes("cluster_slots_ok:16384") &&
          (!replication.includes("role:slave") || replication.includes("master_link_status:up"));
      }));
      if (states.every(Boolean)) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`the cluster did not become healthy within ${timeoutMs} ms`);
  }

  /** The primaries' ports, as the first answering node's `CLUSTER SLOTS` says now. */
  async primaryPorts(): Promise<number[]> {
    const ranges = await this.slots();
    return [...new Set(ranges.map((range) => range.primary))];
  }

  /** `CLUSTER SLOTS` of the first node that answers: each range and its primary's and replicas' ports. */
  async slots(): Promise<{ from: number; to: number; primary: number; replicas: number[] }[]> {
    for (const port of this.#children.keys()) {
      try {
        const reply = await redisCall(port, ["CLUSTER", "SLOTS"]) as unknown[][];
        return reply.map((range) => ({
          from: Number(range[0]),
          to: Number(range[1]),
          primary: Number((range[2] as unknown[])[1]),
          replicas: range.slice(3).map((node) => Number((node as unknown[])[1])),
        }));
      } catch {
        // Try the next node.
      }
    }
    throw new Error("no cluster node answered CLUSTER SLOTS");
  }

  /** The port of the primary that serves `key` now. */
  async primaryOf(key: string): Promise<number> {
    const slot = await this.keySlot(key);
    const range = (await this.slots()).find((r) => r.from <= slot && slot <= r.to);
    if (range === undefined) throw new Error(`no node serves slot ${slot}`);
    return range.primary;
  }

  /** `CLUSTER KEYSLOT key`, asked of a node. */
  async keySlot(key: string): Promise<number> {
    return Number(await this.call(["CLUSTER", "KEYSLOT", key]));
  }

  /** Sends one command to the first running node (for node-agnostic commands). */
  call(args: string[]): Promise<unknown> {
    const port = this.#children.keys().next().value;
    if (port === undefined) throw new Error("no cluster node is running");
    return redisCall(port, args);
  }

  /** Sends one command to the node on `port`. */
  onNode(port: number, args: string[]): Promise<unknown> {
    return redisCall(port, args);
  }

  /** Sends `args` to every running primary; resolves with their replies, by port. */
  async onPrimaries(args: string[]): Promise<Map<number, unknown>> {
    const out = new Map<number, unknown>();
    for (const port of await this.primaryPorts()) {
      if (this.#children.has(port)) out.set(port, await redisCall(port, args));
    }
    return out;
  }

  /** Keys matching `pattern` on every primary (`KEYS`, for tests only), by port. */
  async keysByNode(pattern: string): Promise<Map<number, string[]>> {
    const replies = await this.onPrimaries(["KEYS", pattern]);
    return new Map([...replies].map(([port, keys]) => [port, (keys as unknown[]).map(String)]));
  }

  /** SIGKILL to the node on `port`; resolves once it exited. */
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

  /** Kills every node and removes the directory. */
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

  async #spawn(binary: string, port: number, nodeTimeoutMs: number): Promise<void> {
    const args = [
      ...["--port", String(port), "--bind", "127.0.0.1", "--dir", this.#dir],
      ...["--save", "", "--appendonly", "no"],
      ...["--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`],
      ...["--cluster-node-timeout", String(nodeTimeoutMs)],
      ...["--cluster-require-full-coverage", "no"],
      ...["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"],
    ];
    await spawnRedisProcess(binary, args, port, (child) => this.#children.set(port, child));
  }
}

/** `count` distinct free ports whose cluster-bus port (+10000) is free too. */
function clusterPorts(count: number): number[] {
  const ports: number[] = [];
  for (let tries = 0; ports.length < count && tries < 200; tries++) {
    const port = freePort();
    if (port + 10_000 > 65_535 || ports.includes(port) || ports.includes(port + 10_000)) continue;
    if (ports.some((p) => p + 10_000 === port)) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port: port + 10_000 }).close();
    } catch {
      continue;
    }
    ports.push(port);
  }
  if (ports.length < count) throw new Error(`could not find ${count} free port pairs`);
  return ports;
}
