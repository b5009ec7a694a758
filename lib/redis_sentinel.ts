/**
 * Finding the Redis primary through Sentinel, for lib/redis_link.ts: the
 * sentinels are asked in turn (`SENTINEL get-master-addr-by-name`) and the
 * first answer is the candidate; the link then checks with `ROLE` that the
 * node it reached is a primary, and asks again after any fault. So a node
 * follows a failover by itself: the old primary dies (or Sentinel demotes it
 * and kills its clients' connections), the link's connections break, and the
 * next attempt finds the primary the sentinels elected.
 *
 * @module
 */
import { createClient } from "@redis/client";
import type { RedisSentinelConfig } from "./config.ts";
import { errorMessage } from "./errors.ts";

/** A node's address. */
export interface RedisAddress {
  host: string;
  port: number;
}

/** `sentinel <name> via host:port,…`, for messages: never a password. */
export function describeSentinel(target: RedisSentinelConfig): string {
  return `sentinel ${target.name} via ${
    target.sentinels.map(({ host, port }) => `${host}:${port}`).join(",")
  }`;
}

/**
 * Asks each sentinel in turn for the primary's address; resolves with the
 * first answer. `stopped` is read before each sentinel, so that a link closed
 * meanwhile does not wait for every sentinel to time out.
 *
 * @throws {Error} naming every sentinel's failure when none answered with an address
 */
export async function askSentinels(
  target: RedisSentinelConfig,
  connectTimeoutMs: number,
  stopped: () => boolean = () => false,
): Promise<RedisAddress> {
  const failures: string[] = [];
  for (const sentinel of target.sentinels) {
    if (stopped()) throw new Error("closed");
    try {
      const address = await askOne(target, sentinel, connectTimeoutMs);
      if (address !== undefined) return address;
      failures.push(`${sentinel.host}:${sentinel.port} knows no primary named ${target.name}`);
    } catch (err) {
      failures.push(`${sentinel.host}:${sentinel.port}: ${errorMessage(err)}`);
    }
  }
  throw new Error(`no sentinel named the primary (${failures.join("; ")})`);
}

async function askOne(
  target: RedisSentinelConfig,
  sentinel: RedisAddress,
  connectTimeoutMs: number,
): Promise<RedisAddress | undefined> {
  const client = createClient({
    socket: {
      host: sentinel.host,
      port: sentinel.port,
      connectTimeout: connectTimeoutMs,
      reconnectStrategy: false,
    },
    disableOfflineQueue: true,
    ...(target.sentinelPassword === undefined ? {} : { password: target.sentinelPassword }),
  });
  // Faults reach us through connect() and the command; this only keeps them from being unhandled.
  client.on("error", () => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no answer in time")), connectTimeoutMs);
    });
    const ask = client.connect().then(() =>
      client.sendCommand(["SENTINEL", "get-master-addr-by-name", target.name])
    );
    // Settled later when the timeout wins; its fault is the timeout's.
    ask.catch(() => {});
    const reply = await Promise.race([ask, timeout]);
    if (!Array.isArray(reply) || reply.length !== 2) return undefined;
    const [host, port] = reply.map(String);
    return host === undefined || port === undefined ? undefined : { host, port: Number(port) };
  } finally {
    clearTimeout(timer);
    try {
      client.destroy();
    } catch {
      // Never opened.
    }
  }
}

/**
 * True when the node `client` is connected to is a primary (`ROLE` answers
 * `master`): a sentinel that has not yet heard of a failover may still name
 * the old one.
 */
export async function isPrimary(
  client: { sendCommand(args: string[]): Promise<unknown> },
): Promise<boolean> {
  const role = await client.sendCommand(["ROLE"]);
  return Array.isArray(role) && String(role[0]) === "master";
}
