/**
 * The Redis bus's connections, on one Redis or on a Redis Cluster, behind
 * one shape: a publisher and a subscriber per node, found by channel. On one
 * Redis (or Sentinel) that is one {@linkcode RedisLink} and classic pub/sub
 * (`PUBLISH`/`SUBSCRIBE`); on a Cluster a link per primary
 * ({@linkcode RedisClusterLink}) and sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`,
 * Redis 7): a room's messages travel only through the shard that serves its
 * channel's slot, so bus traffic spreads over the shards instead of every
 * node hearing every message.
 *
 * @module
 */
import { RedisClusterLink } from "../redis_cluster.ts";
import {
  isCluster,
  type RedisClient,
  RedisLink,
  type RedisLinkOptions,
  type RedisTarget,
} from "../redis_link.ts";

/** Options for {@linkcode openBusLinks}. */
export interface BusLinksOptions extends
  Pick<
    RedisLinkOptions,
    "name" | "whileDown" | "connectTimeoutMs" | "maxReconnectDelayMs" | "maxPendingCommands"
  > {
  /** Where Redis is. */
  url: RedisTarget;
  /**
   * Runs on every fresh publisher/subscriber pair, before its link reports
   * `ok`; `serves(channel)` says whether this pair's node carries `channel`.
   */
  onOpen: (sub: RedisClient, serves: (channel: string) => boolean) => Promise<void>;
  /** See {@linkcode RedisLinkOptions.onConnect}. */
  onConnect: (reconnected: boolean) => void;
  /** After a Cluster's slot map changed: channels may have moved to another node. */
  onTopology: () => void;
  /** Called once per outage (per shard on a Cluster). */
  onError: (error: Error) => void;
  /** Called when Redis is back after an outage. */
  onRecover: () => void;
}

/** The bus's publisher and subscriber connections, by channel. */
export interface BusLinks {
  /** True on a Cluster: publish with `SPUBLISH`, subscribe with `SSUBSCRIBE`. */
  readonly sharded: boolean;
  /** `ok` while every node's pair is open. */
  readonly status: "ok" | "degraded";
  /** Why not `ok`. */
  readonly detail: string;
  /** `[publisher, subscriber]` of the node carrying `channel`, or undefined while it is down. */
  pairFor(channel: string): readonly RedisClient[] | undefined;
  /** Resolves true once `ok`, or false after `timeoutMs` or on close. */
  ready(timeoutMs: number): Promise<boolean>;
  /** After a `MOVED` reply: asks a Cluster for its slot map again (nothing on one Redis). */
  refresh(): void;
  /** Closes every connection. */
  close(): Promise<void>;
}

/**
 * Opens the bus's connections to `options.url`; connecting starts at once.
 *
 * @example
 * ```ts ignore
 * const links = openBusLinks({ url, name: "Redis bus", whileDown: "…", onOpen, … });
 * const [pub] = links.pairFor("realtime:room:lobby") ?? [];
 * ```
 */
export function openBusLinks(options: BusLinksOptions): BusLinks {
  const { url, onOpen, ...rest } = options;
  if (!isCluster(url)) {
    const link = new RedisLink({
      ...rest,
      url,
      connections: 2,
      onOpen: ([, sub]) => onOpen(sub!, () => true),
    });
    return {
      sharded: false,
      get status() {
        return link.status;
      },
      get detail() {
        return link.detail;
      },
      pairFor: () => link.clients,
      ready: (timeoutMs) => link.ready(timeoutMs),
      refresh: () => {},
      close: () => link.close(),
    };
  }
  const cluster: RedisClusterLink = new RedisClusterLink({
    ...rest,
    url,
    connections: 2,
    onOpen: ([, sub], address) => onOpen(sub!, (channel) => cluster.serves(address, channel)),
  });
  return {
    sharded: true,
    get status() {
      return cluster.status;
    },
    get detail() {
      return cluster.detail;
    },
    pairFor: (channel) => cluster.linkFor(channel)?.clients,
    ready: (timeoutMs) => cluster.ready(timeoutMs),
    refresh: () => cluster.refresh(),
    close: () => cluster.close(),
  };
}
