/**
 * What every Redis store shares around {@linkcode RedisLink}: running a
 * command or a Lua script within the link's deadline, turning every fault
 * into {@linkcode StoreUnavailableError} (a fault of our own script stays
 * the bug it is), and reporting the link's state as {@linkcode StoreHealth}.
 * The stores keep only their keys, scripts and replies.
 *
 * @module
 */
import { ErrorReply } from "@redis/client";
import { errorMessage } from "../errors.ts";
import { type RedisClient, RedisLink, type RedisLinkOptions } from "../redis_link.ts";
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
  readonly #link: RedisLink;
  readonly #store: string;
  readonly #waitForLink: boolean;

  /** @param options the link's options and the store's name; connecting starts at once */
  constructor(options: RedisStoreLinkOptions) {
    const { store, waitForLink = false, ...link } = options;
    this.#link = new RedisLink(link);
    this.#store = store;
    this.#waitForLink = waitForLink;
  }

  /** Resolves true once connected, or false after `timeoutMs`; it keeps trying either way. */
  ready(timeoutMs: number): Promise<boolean> {
    return this.#link.ready(timeoutMs);
  }

  /** `ok` while connected; `degraded` with the reason otherwise. */
  health(): StoreHealth {
    if (this.#link.status === "ok") return { status: "ok", transport: "redis" };
    return { status: "degraded", transport: "redis", detail: this.#link.detail };
  }

  /** Closes the connection; idempotent. */
  close(): Promise<void> {
    return this.#link.close();
  }

  /**
   * Sends one command.
   *
   * @throws {StoreUnavailableError} when Redis is unreachable, fails or does not answer in time
   */
  async command(args: string[]): Promise<unknown> {
    const client = await this.#client();
    return await this.#run(client, () => client.sendCommand(args));
  }

  /**
   * Runs a script by hash (in full after NOSCRIPT).
   *
   * @throws {StoreUnavailableError} as {@linkcode RedisStoreLink.command} does
   * @throws {ErrorReply} for a fault raised inside the script: a bug, not an outage
   */
  async eval(script: Script, keys: string[], args: string[]): Promise<unknown> {
    const client = await this.#client();
    const sha = await script.sha();
    const tail = [String(keys.length), ...keys, ...args];
    return await this.#run(client, async () => {
      try {
        return await client.sendCommand(["EVALSHA", sha, ...tail]);
      } catch (err) {
        if (!(err instanceof ErrorReply) || !err.message.startsWith("NOSCRIPT")) throw err;
        return await client.sendCommand(["EVAL", script.source, ...tail]);
      }
    });
  }

  /** An error naming this store, with the link's hint of when to retry. */
  unavailable(why: string, cause?: unknown): StoreUnavailableError {
    return new StoreUnavailableError(
      `${this.#store}: ${why}`,
      this.#link.retryAfterMs(),
      cause === undefined ? undefined : { cause },
    );
  }

  async #client(): Promise<RedisClient> {
    const link = this.#link;
    if (this.#waitForLink && link.status !== "ok" && !link.closed) {
      await link.ready(link.commandTimeoutMs);
    }
    if (link.closed) throw this.unavailable("closed");
    const client = link.clients?.[0];
    if (client === undefined || !client.isReady) {
      throw this.unavailable(`Redis unreachable (${link.detail})`);
    }
    return client;
  }

  async #run<T>(client: RedisClient, send: () => Promise<T>): Promise<T> {
    try {
      return await this.#link.deadline(
        client,
        send(),
        () => this.unavailable(`Redis did not answer within ${this.#link.commandTimeoutMs} ms`),
      );
    } catch (err) {
      if (err instanceof StoreUnavailableError || isScriptError(err)) throw err;
      // Every other failure (connection, OOM, READONLY after a failover,
      // BUSY) means unavailable.
      throw this.unavailable(`Redis command failed (${errorMessage(err)})`, err);
    }
  }
}

/** True for an error raised inside our Lua script: a bug, not an outage. */
function isScriptError(err: unknown): boolean {
  return err instanceof ErrorReply && err.message.startsWith("ERR") &&
    err.message.includes("script");
}
