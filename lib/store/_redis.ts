/**
 * What every Redis store shares around {@linkcode RedisLink}: running a
 * command or a Lua script within the link's deadline, turning every fault
 * into {@linkcode StoreUnavailableError} (a fault of our own script stays
 * the bug it is), and reporting the link's state as {@linkcode StoreHealth}.
 * The stores keep only their keys, scripts and replies.
 *
 * On a Redis Cluster (lib/redis_cluster.ts) every command goes to the
 * primary serving its first key's slot; the stores name their keys with
 * {@linkcode RedisStoreLink.tag} so that every key one command or script
 * touches shares a hash tag (on one Redis, `tag` changes nothing, so key
 * names stay those of earlier releases).
 *
 * @module
 */
import { ErrorReply } from "@redis/client";
import { errorMessage } from "../errors.ts";
import { RedisClusterLink } from "../redis_cluster.ts";
import { isCluster, type RedisClient, RedisLink, type RedisLinkOptions } from "../redis_link.ts";
import { sha1Hex } from "./_hash.ts";
import { type StoreHealth, StoreUnavailableError } from "./types.ts";

/** A Lua script run by hash, sent in full once Redis answers NOSCRIPT. */
export class Script {
  /** The Lua source. */
  readonly source: string;
  #sha: Promise<string> | undefined;

  /** @param source the Lua source */
  constructor(source: string) {
    this.source = source;
  }

  /** Its SHA-1, computed once. */
  sha(): Promise<string> {
    return this.#sha ??= sha1Hex(this.source);
  }
}

/**
 * What every Redis store's options share: where Redis is, the key prefix,
 * and the link's deadlines and outage hook (documented, with their defaults,
 * on {@linkcode RedisLinkOptions}). A store hands its options to its
 * {@linkcode RedisStoreLink} as they are: the link reads only its own fields.
 */
export interface RedisStoreOptions extends
  Pick<
    RedisLinkOptions,
    "url" | "connectTimeoutMs" | "commandTimeoutMs" | "maxReconnectDelayMs" | "onError"
  > {
  /**
   * Prefix of every key, so several apps can share one Redis (`BUS_CHANNEL`).
   *
   * @default {"realtime"}
   */
  prefix?: string;
}

/**
 * Returns `store` once connected, or after `startTimeoutMs` without: never
 * rejects for an unreachable Redis (the store reports the outage through
 * `onError` and its health, and keeps trying), so the server can start first.
 *
 * @example
 * ```ts ignore
 * const store = await startRedisStore(new RedisTicketStore(options), 2000);
 * ```
 */
export async function startRedisStore<S extends { ready(timeoutMs: number): Promise<boolean> }>(
  store: S,
  startTimeoutMs = 2000,
): Promise<S> {
  await store.ready(startTimeoutMs);
  return store;
}

/**
 * Options for {@linkcode RedisStoreLink}: the link's, plus how a store waits
 * for it. Fields of the store's own options passed along are not read.
 */
export interface RedisStoreLinkOptions extends RedisLinkOptions {
  /**
   * What the store is called in errors: `<store>: Redis unreachable (…)`.
   * `name` (`Redis ticket store`) is the link's, in outage messages.
   */
  store: string;
  /**
   * Whether a command sent while the link is down first waits up to one
   * command timeout for it to come back (a ticket is asked for right before
   * the socket that redeems it; an operator's revocation should not fail
   * for a reconnect under way), instead of failing at once.
   *
   * @default {false}
   */
  waitForLink?: boolean;
}

/**
 * One store's supervised connection: {@linkcode RedisLink} plus the
 * store-side rules every Redis store follows.
 *
 * @example
 * ```ts ignore
 * const link = new RedisStoreLink({
 *   url: "redis://127.0.0.1:6379",
 *   name: "Redis widget store",
 *   store: "widget store",
 *   whileDown: "widgets answer unavailable until it is back",
 * });
 * await link.ready(2000);
 * await link.command(["SET", "k", "v"]);
 * await link.close();
 * ```
 */
export class RedisStoreLink {
  readonly #link: RedisLink | undefined;
  readonly #cluster: RedisClusterLink | undefined;
  readonly #store: string;
  readonly #waitForLink: boolean;
  readonly #commandTimeoutMs: number;

  /** @param options the link's options and the store's name; connecting starts at once */
  constructor(options: RedisStoreLinkOptions) {
    const { store, waitForLink = false, url, ...link } = options;
    if (isCluster(url)) {
      this.#cluster = new RedisClusterLink({ ...link, url });
      this.#commandTimeoutMs = this.#cluster.commandTimeoutMs;
    } else {
      this.#link = new RedisLink({ ...link, url });
      this.#commandTimeoutMs = this.#link.commandTimeoutMs;
    }
    this.#store = store;
    this.#waitForLink = waitForLink;
  }

  /** True on a Redis Cluster. */
  get cluster(): boolean {
    return this.#cluster !== undefined;
  }

  /**
   * `part` as a hash tag on a Cluster (`{part}`), so that keys built from it
   * share a slot; `part` unchanged on one Redis.
   */
  tag(part: string): string {
    return this.#cluster === undefined ? part : `{${part}}`;
  }

  /** Resolves true once connected, or false after `timeoutMs`; it keeps trying either way. */
  ready(timeoutMs: number): Promise<boolean> {
    return (this.#link ?? this.#cluster!).ready(timeoutMs);
  }

  /** `ok` while connected (on a Cluster: to every shard); `degraded` with the reason otherwise. */
  health(): StoreHealth {
    const link = this.#link ?? this.#cluster!;
    if (link.status === "ok") return { status: "ok", transport: "redis" };
    return { status: "degraded", transport: "redis", detail: link.detail };
  }

  /** Closes the connection; idempotent. */
  close(): Promise<void> {
    return (this.#link ?? this.#cluster!).close();
  }

  /**
   * Sends one command; on a Cluster to the primary serving `key`, by default
   * `args[1]` (the key of most commands).
   *
   * @throws {StoreUnavailableError} when Redis is unreachable, fails or does not answer in time
   */
  async command(args: string[], key: string = args[1] ?? ""): Promise<unknown> {
    const [link, client] = await this.#client(key);
    return await this.#run(link, client, () => client.sendCommand(args));
  }

  /**
   * Runs a script by hash (in full after NOSCRIPT); on a Cluster on the
   * primary serving `keys[0]` (every key must share its slot).
   *
   * @throws {StoreUnavailableError} as {@linkcode RedisStoreLink.command} does
   * @throws {ErrorReply} for a fault raised inside the script: a bug, not an outage
   */
  async eval(script: Script, keys: string[], args: string[]): Promise<unknown> {
    const [link, client] = await this.#client(keys[0] ?? "");
    const sha = await script.sha();
    const tail = [String(keys.length), ...keys, ...args];
    return await this.#run(link, client, async () => {
      try {
        return await client.sendCommand(["EVALSHA", sha, ...tail]);
      } catch (err) {
        if (!(err instanceof ErrorReply) || !err.message.startsWith("NOSCRIPT")) throw err;
        return await client.sendCommand(["EVAL", script.source, ...tail]);
      }
    });
  }

  /** An error naming this store, with the link's hint of when to retry. */
  unavailable(why: string, cause?: unknown, link = this.#link): StoreUnavailableError {
    return new StoreUnavailableError(
      `${this.#store}: ${why}`,
      link?.retryAfterMs() ?? CLUSTER_RETRY_AFTER_MS,
      cause === undefined ? undefined : { cause },
    );
  }

  /** The link for `key` (on a Cluster, its primary's) and its connection. */
  async #client(key: string): Promise<[RedisLink, RedisClient]> {
    const cluster = this.#cluster;
    if (cluster !== undefined && this.#waitForLink && cluster.status !== "ok" && !cluster.closed) {
      const link = cluster.linkFor(key);
      await (link ?? cluster).ready(this.#commandTimeoutMs);
    }
    const link = this.#link ?? cluster!.linkFor(key);
    if (link === undefined) {
      if (cluster!.closed) throw this.unavailable("closed");
      throw this.unavailable(`no Redis Cluster primary known for this key (${cluster!.detail})`);
    }
    if (cluster === undefined && this.#waitForLink && link.status !== "ok" && !link.closed) {
      await link.ready(link.commandTimeoutMs);
    }
    if (link.closed) throw this.unavailable("closed", undefined, link);
    const client = link.clients?.[0];
    if (client === undefined || !client.isReady) {
      throw this.unavailable(`Redis unreachable (${link.detail})`, undefined, link);
    }
    return [link, client];
  }

  async #run<T>(link: RedisLink, client: RedisClient, send: () => Promise<T>): Promise<T> {
    try {
      return await link.deadline(
        client,
        send(),
        () =>
          this.unavailable(
            `Redis did not answer within ${link.commandTimeoutMs} ms`,
            undefined,
            link,
          ),
      );
    } catch (err) {
      if (err instanceof StoreUnavailableError || isScriptError(err)) throw err;
      // A slot moved or the shard is failing over: the slot map is asked for again.
      if (err instanceof ErrorReply && /^(MOVED|ASK|CLUSTERDOWN|TRYAGAIN)/.test(err.message)) {
        this.#cluster?.refresh();
      }
      // Every other failure (connection, OOM, READONLY after a failover,
      // BUSY) means unavailable.
      throw this.unavailable(`Redis command failed (${errorMessage(err)})`, err, link);
    }
  }
}

/** What a caller is told to wait when no shard's link can say better. */
const CLUSTER_RETRY_AFTER_MS = 500;

/** True for an error raised inside our Lua script: a bug, not an outage. */
function isScriptError(err: unknown): boolean {
  return err instanceof ErrorReply && err.message.startsWith("ERR") &&
    err.message.includes("script");
}
