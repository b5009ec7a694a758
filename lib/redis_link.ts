/**
 * A supervised Redis connection: the one place that opens `@redis/client`
 * connections, notices they broke, replaces them with a capped, jittered
 * back-off, reports the outage once and the recovery, and closes without
 * leaving a timer behind. The bus and the Redis stores build on it and keep
 * only what is theirs (channels, scripts, keys, their own errors).
 *
 * A Redis Cluster is a link per primary (lib/redis_cluster.ts builds them
 * from the slot map); {@linkcode isCluster} tells the targets apart.
 *
 * With Sentinel (a {@linkcode RedisSentinelConfig} instead of a URL) every
 * attempt first asks the sentinels where the primary is and checks that the
 * node it reached is one (lib/redis_sentinel.ts), so a failover is followed
 * like any other outage: the connections break, the next attempt finds the
 * new primary.
 *
 * The client's own reconnection is switched off: its back-off sleep cannot be
 * cancelled, so an owner closed during an outage would leave a timer behind;
 * and a fresh set of connections per attempt leaves no half-known state
 * (subscriptions, scripts in flight) to reconcile.
 *
 * @module
 */
import { createClient } from "@redis/client";
import type { RedisClusterConfig, RedisSentinelConfig, RedisTarget } from "./config.ts";
import { errorMessage } from "./errors.ts";
import { askSentinels, describeSentinel, isPrimary, type RedisAddress } from "./redis_sentinel.ts";
import { awaitReady } from "./_ready.ts";

export type { RedisClusterConfig, RedisSentinelConfig, RedisTarget } from "./config.ts";

/** One `@redis/client` connection, as {@linkcode RedisLink} opens it. */
export type RedisClient = ReturnType<typeof createClient>;

/** Options for {@linkcode RedisLink}. */
export interface RedisLinkOptions {
  /**
   * `redis://` or `rediss://` URL, credentials included; or the sentinels
   * that know the primary. Not a cluster: see lib/redis_cluster.ts.
   */
  url: RedisTarget;
  /**
   * What owns the link, in messages: `Cannot create <name>: …` and
   * `<name> lost the connection to redis://host:port (…)`.
   */
  name: string;
  /** What users see while Redis is down, ending the outage message. */
  whileDown: string;
  /**
   * Connections opened together and replaced together (the bus needs one to
   * publish and one to subscribe).
   *
   * @default {1}
   */
  connections?: number;
  /**
   * Time allowed to open a connection.
   *
   * @default {5000}
   */
  connectTimeoutMs?: number;
  /**
   * How long a command run through {@linkcode RedisLink.deadline} may go
   * unanswered before the link counts Redis as down.
   *
   * @default {2000}
   */
  commandTimeoutMs?: number;
  /**
   * Longest wait between reconnect attempts (the wait doubles from 100 ms).
   *
   * @default {2000}
   */
  maxReconnectDelayMs?: number;
  /** Commands in flight per connection before more are refused; unbounded when unset. */
  maxPendingCommands?: number;
  /**
   * How long `close()` lets commands already written reach Redis before it
   * destroys the connections.
   *
   * @default {1000}
   */
  closeFlushMs?: number;
  /**
   * Runs on every fresh set of connections before the link reports `ok`
   * (the bus subscribes its rooms again here); a throw counts as a failed
   * attempt.
   */
  onOpen?: (clients: readonly RedisClient[]) => Promise<void>;
  /**
   * Called each time the link is `ok` again, after `ready` waiters and
   * `onRecover`; `reconnected` is false for the first connection only.
   */
  onConnect?: (reconnected: boolean) => void;
  /** Called once when Redis becomes unreachable, not again until it is back. */
  onError?: (error: Error) => void;
  /** Called when Redis is back after an outage reported through `onError`. */
  onRecover?: () => void;
}

/** One attempt's connections, replaced as a whole after any fault. */
interface Connection {
  clients: readonly RedisClient[];
  failed: boolean;
}

const FIRST_RECONNECT_DELAY_MS = 100;

/**
 * A supervised Redis connection (or set of connections). Connecting starts at
 * once and never stops until `close()`; `status` is `ok` only while every
 * connection is open and `onOpen` has finished.
 *
 * @example
 * ```ts ignore
 * import { RedisLink } from "./redis_link.ts";
 * const link = new RedisLink({
 *   url: "redis://127.0.0.1:6379",
 *   name: "Redis widget store",
 *   whileDown: "widgets answer unavailable until it is back",
 *   onError: (err) => console.error(err.message),
 * });
 * await link.ready(2000);
 * const client = link.clients?.[0];
 * if (client?.isReady) {
 *   const reply = await link.deadline(client, client.sendCommand(["PING"]), () => new Error("slow"));
 * }
 * await link.close();
 * ```
 */
export class RedisLink {
  /** `redis://host:port` of the URL, or `sentinel <name> via …`, for messages: never the credentials. */
  readonly where: string;
  /** See {@linkcode RedisLinkOptions.commandTimeoutMs}. */
  readonly commandTimeoutMs: number;
  readonly #name: string;
  readonly #whileDown: string;
  readonly #url: string | RedisSentinelConfig;
  readonly #connections: number;
  readonly #connectTimeoutMs: number;
  readonly #maxReconnectDelayMs: number;
  readonly #maxPending: number | undefined;
  readonly #closeFlushMs: number;
  readonly #onOpen: (clients: readonly RedisClient[]) => Promise<void>;
  readonly #onConnect: (reconnected: boolean) => void;
  readonly #onError: (error: Error) => void;
  readonly #onRecover: () => void;
  readonly #waiters = new Set<(connected: boolean) => void>();
  #conn: Connection | undefined;
  #connecting: Promise<void>;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #retryAt = 0;
  #attempts = 0;
  #ok = false;
  #detail = "connecting";
  #everConnected = false;
  #outageReported = false;
  #closed = false;

  /** @param options URL, naming, bounds and hooks; connecting starts at once */
  constructor(options: RedisLinkOptions) {
    const {
      url,
      name,
      whileDown,
      connections = 1,
      connectTimeoutMs = 5000,
      commandTimeoutMs = 2000,
      maxReconnectDelayMs = 2000,
      maxPendingCommands,
      closeFlushMs = 1000,
      onOpen = () => Promise.resolve(),
      onConnect = () => {},
      onError = () => {},
      onRecover = () => {},
    } = options;
    if (isCluster(url)) {
      throw new TypeError(
        `Cannot create ${name}: a Redis Cluster needs RedisClusterLink (lib/redis_cluster.ts)`,
      );
    }
    this.where = typeof url === "string" ? describeUrl(url, name) : describeSentinel(url);
    const bounds: Record<string, number> = {
      connections,
      connectTimeoutMs,
      commandTimeoutMs,
      maxReconnectDelayMs,
    };
    if (maxPendingCommands !== undefined) bounds.maxPendingCommands = maxPendingCommands;
    for (const [key, value] of Object.entries(bounds)) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(
          `Cannot create ${name}: ${key} must be a positive integer, current value is ${value}`,
        );
      }
    }
    this.#name = name;
    this.#whileDown = whileDown;
    this.#url = url;
    this.#connections = connections;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.commandTimeoutMs = commandTimeoutMs;
    this.#maxReconnectDelayMs = maxReconnectDelayMs;
    this.#maxPending = maxPendingCommands;
    this.#closeFlushMs = closeFlushMs;
    this.#onOpen = onOpen;
    this.#onConnect = onConnect;
    this.#onError = onError;
    this.#onRecover = onRecover;
    this.#connecting = this.#connect();
  }

  /**
   * The open connections, in the order asked for, or undefined while down.
   * Set as soon as they open, so `onOpen` and calls racing it can use them;
   * check `isReady` before sending.
   */
  get clients(): readonly RedisClient[] | undefined {
    return this.#conn?.clients;
  }

  /** `ok` once connected and opened; `degraded` while connecting, down or closed. */
  get status(): "ok" | "degraded" {
    return this.#ok && !this.#closed ? "ok" : "degraded";
  }

  /** Why the link is not `ok`: `connecting`, the last fault, or `closed`. */
  get detail(): string {
    return this.#closed ? "closed" : this.#detail;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Resolves true once connected (at once if connected now), or false after
   * `timeoutMs` or on close; the link keeps trying either way.
   */
  ready(timeoutMs: number): Promise<boolean> {
    return awaitReady(this.status === "ok", this.#closed, this.#waiters, timeoutMs);
  }

  /** A hint for callers told to retry: until the next attempt, within 100 ms and the cap. */
  retryAfterMs(): number {
    return Math.max(
      FIRST_RECONNECT_DELAY_MS,
      Math.min(this.#maxReconnectDelayMs, this.#retryAt - Date.now() + FIRST_RECONNECT_DELAY_MS),
    );
  }

  /**
   * Settles with `command`, sent on `client`, or rejects with `timeoutError()`
   * after `commandTimeoutMs`. A Redis that does not answer is treated as
   * down: the connections `client` belongs to are replaced, which also fails
   * every other command waiting on them.
   */
  async deadline<T>(
    client: RedisClient,
    command: Promise<T>,
    timeoutError: () => Error,
  ): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = timeoutError();
        // Rejected first: replacing the connection also rejects `command`,
        // with a vaguer "Disconnects client".
        reject(err);
        const conn = this.#conn;
        if (conn?.clients.includes(client)) this.#fail(conn, err);
      }, this.commandTimeoutMs);
    });
    try {
      return await Promise.race([command, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops reconnecting, resolves `ready` waiters with false, and closes the connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    for (const waiter of [...this.#waiters]) waiter(false);
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn !== undefined) {
      conn.failed = true;
      await Promise.all(conn.clients.map((client) => closeGracefully(client, this.#closeFlushMs)));
    }
    // A connect in flight cannot be aborted (the client only tracks a socket
    // once it is open); it notices #closed when it settles and closes its own.
    await this.#connecting;
  }

  #newClient(primary: RedisAddress | undefined): RedisClient {
    const socket = { connectTimeout: this.#connectTimeoutMs, reconnectStrategy: false } as const;
    const common = {
      disableOfflineQueue: true,
      ...(this.#maxPending === undefined ? {} : { commandsQueueMaxLength: this.#maxPending }),
    };
    const target = this.#url;
    if (typeof target === "string") return createClient({ url: target, ...common, socket });
    return createClient({
      ...common,
      ...(target.password === undefined ? {} : { password: target.password }),
      socket: { ...socket, host: primary?.host ?? "", port: primary?.port ?? 0 },
    });
  }

  /** Where the primary is now, when the target is Sentinel; undefined for a URL. */
  async #primary(): Promise<RedisAddress | undefined> {
    const target = this.#url;
    return typeof target === "string"
      ? undefined
      : await askSentinels(target, this.#connectTimeoutMs, () => this.#closed);
  }

  /** One connection attempt; never rejects (faults go to #fail, which schedules the next). */
  async #connect(): Promise<void> {
    this.#retryTimer = undefined;
    let primary: RedisAddress | undefined;
    try {
      primary = await this.#primary();
    } catch (err) {
      this.#fail({ clients: [], failed: false }, err);
      return;
    }
    const clients = Array.from({ length: this.#connections }, () => this.#newClient(primary));
    const conn: Connection = { clients, failed: false };
    let open = false;
    for (const client of clients) {
      // While connecting, the same failure also rejects connect(); reacting
      // twice would destroy a client whose socket is not tracked yet.
      client.on("error", (err: unknown) => {
        if (open) this.#fail(conn, err);
      });
    }
    const results = await Promise.allSettled(clients.map((client) => client.connect()));
    const failure = results.find((r) => r.status === "rejected");
    if (failure !== undefined || !clients.every((client) => client.isReady)) {
      this.#fail(conn, failure?.reason ?? new Error("connection closed while opening"));
      return;
    }
    if (primary !== undefined && !(await isPrimary(clients[0]!).catch(() => false))) {
      const where = `${primary.host}:${primary.port}`;
      this.#fail(conn, new Error(`${where} is not the primary (the sentinels have not caught up)`));
      return;
    }
    if (this.#closed) {
      conn.failed = true;
      clients.forEach(destroy);
      return;
    }
    open = true;
    this.#conn = conn;
    try {
      await this.#onOpen(clients);
    } catch (err) {
      this.#fail(conn, err);
      return;
    }
    if (conn.failed || this.#closed) return;
    this.#attempts = 0;
    this.#ok = true;
    const reconnected = this.#everConnected;
    this.#everConnected = true;
    for (const waiter of [...this.#waiters]) waiter(true);
    if (this.#outageReported) {
      this.#outageReported = false;
      this.#onRecover();
    }
    this.#onConnect(reconnected);
  }

  #fail(conn: Connection, err: unknown): void {
    if (conn.failed) return;
    conn.failed = true;
    if (this.#conn === conn) this.#conn = undefined;
    conn.clients.forEach(destroy);
    if (this.#closed) return;
    const reason = errorMessage(err);
    this.#ok = false;
    this.#detail = reason;
    if (!this.#outageReported) {
      this.#outageReported = true;
      const what = this.#everConnected
        ? `lost the connection to ${this.where}`
        : `cannot reach ${this.where}`;
      this.#onError(
        new Error(`${this.#name} ${what} (${reason}): ${this.#whileDown}`, { cause: err }),
      );
    }
    // Jitter keeps a fleet that lost Redis together from reconnecting in lockstep.
    const delay = Math.min(
      this.#maxReconnectDelayMs,
      FIRST_RECONNECT_DELAY_MS * 2 ** this.#attempts++,
    ) * (0.5 + Math.random() / 2);
    this.#retryAt = Date.now() + delay;
    this.#retryTimer = setTimeout(() => {
      this.#connecting = this.#connect();
    }, delay);
  }
}

/** True when `target` names a Redis Cluster (`REDIS_CLUSTER_NODES`). */
export function isCluster(target: RedisTarget): target is RedisClusterConfig {
  return typeof target !== "string" && "cluster" in target;
}

/** Host and port of a Redis URL, for messages: never the credentials. */
function describeUrl(url: string, name: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`Cannot create ${name}: url is not a valid URL`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new TypeError(
      `Cannot create ${name}: url must use redis: or rediss:, current value is ${parsed.protocol}`,
    );
  }
  return `${parsed.protocol}//${parsed.hostname}:${parsed.port || "6379"}`;
}

/** Destroys a client whatever its state; a closed client throws, which is fine here. */
function destroy(client: RedisClient): void {
  try {
    client.destroy();
  } catch {
    // Already closed.
  }
}

/** Lets commands already written reach Redis, for at most `flushMs`, then destroys. */
async function closeGracefully(client: RedisClient, flushMs: number): Promise<void> {
  if (!client.isReady || flushMs <= 0) return destroy(client);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, flushMs));
  try {
    await Promise.race([client.close(), timeout]);
  } catch {
    // Closing failed; destroying below is all that is left.
  } finally {
    clearTimeout(timer);
  }
  destroy(client);
}
