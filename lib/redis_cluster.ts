/**
 * A Redis Cluster as the bus and the stores see it: the slot map (which
 * primary serves which of the 16,384 slots, from `CLUSTER SLOTS`) and one
 * {@linkcode RedisLink} per primary, each supervised on its own. A command
 * goes to the link of the primary that serves its key's slot
 * ({@linkcode keySlot}, hash tags included), so one shard's outage only
 * fails the commands for that shard's slots.
 *
 * When a primary's link breaks, the slot map is asked for again (from the
 * nodes that still answer first) until every slot is served by a reachable
 * primary: after a failover the promoted replica gets a link of its own, and
 * the dead primary's link is closed. A `MOVED` reply (resharding) asks for it
 * again too ({@linkcode RedisClusterLink.refresh}).
 *
 * Why not `@redis/client`'s `createCluster`: its client asks for the slot map
 * again only after a `MOVED` reply, not when a primary dies, so the slots of
 * a failed-over shard would keep going to the dead node; when it does, it
 * drops the sharded subscriptions of a node that left without moving them;
 * and its per-node reconnect sleep cannot be cancelled. The per-node links
 * here have none of these faults, and reuse the supervision every other
 * Redis connection has.
 *
 * @module
 */
import { createClient } from "@redis/client";
import type { RedisClusterConfig } from "./config.ts";
import { errorMessage } from "./errors.ts";
import { type RedisClient, RedisLink, type RedisLinkOptions } from "./redis_link.ts";
import { awaitReady } from "./_ready.ts";

/** Slots in a Redis Cluster. */
export const CLUSTER_SLOTS = 16_384;

const FIRST_REFRESH_DELAY_MS = 100;

/** Options for {@linkcode RedisClusterLink}: those of each node's link, and the cluster. */
export interface RedisClusterLinkOptions
  extends Omit<RedisLinkOptions, "url" | "onOpen" | "onConnect" | "onRecover"> {
  /** Nodes asked for the slot map, and the password of every node. */
  url: RedisClusterConfig;
  /**
   * Runs on every fresh set of connections to a primary (`address` is
   * `host:port`), before that node's link reports `ok`; see
   * {@linkcode RedisClusterLink.serves}.
   */
  onOpen?: (clients: readonly RedisClient[], address: string) => Promise<void>;
  /**
   * Called each time a primary's link is `ok`; `reconnected` is false only
   * while the cluster had never been fully reachable.
   */
  onConnect?: (reconnected: boolean) => void;
  /** Called after the slot map changed (a failover or resharding). */
  onTopology?: () => void;
  /** Called when every slot is reachable again after an outage reported through `onError`. */
  onRecover?: () => void;
}

/**
 * The slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag (the part
 * between the first `{` and the first `}` after it, when not empty), modulo
 * 16,384, as Redis computes it.
 */
export function keySlot(key: string): number {
  const bytes = new TextEncoder().encode(key);
  let start = 0;
  let end = bytes.length;
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) {
    crc = ((crc << 8) ^ CRC16[((crc >> 8) ^ bytes[i]!) & 0xff]!) & 0xffff;
  }
  return crc % CLUSTER_SLOTS;
}

const CRC16 = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    table[i] = crc & 0xffff;
  }
  return table;
})();

/**
 * The cluster's slot map and a supervised link per primary.
 *
 * @example
 * ```ts ignore
 * import { RedisClusterLink } from "./redis_cluster.ts";
 * const cluster = new RedisClusterLink({
 *   url: { cluster: [{ host: "10.0.0.1", port: 6379 }], password: undefined },
 *   name: "Redis widget store",
 *   whileDown: "widgets answer unavailable until it is back",
 * });
 * await cluster.ready(2000);
 * const link = cluster.linkFor("widgets:{lobby}");
 * await cluster.close();
 * ```
 */
export class RedisClusterLink {
  /** `cluster via host:port,…`, for messages: never the password. */
  readonly where: string;
  /** See {@linkcode RedisLinkOptions.commandTimeoutMs}. */
  readonly commandTimeoutMs: number;
  readonly #options: RedisClusterLinkOptions;
  readonly #links = new Map<string, RedisLink>();
  readonly #closing = new Set<Promise<void>>();
  readonly #known: string[];
  readonly #waiters = new Set<(connected: boolean) => void>();
  #slots: (string | undefined)[] = new Array(CLUSTER_SLOTS);
  /** The primaries of `#slots`, and whether they serve every slot: kept with it. */
  #primaries = new Set<string>();
  #covered = false;
  #refreshing: Promise<void> | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshAttempts = 0;
  #mapDetail = "connecting";
  #everOk = false;
  #outageReported = false;
  #closed = false;

  /** @param options nodes, naming, bounds and hooks; asking for the slot map starts at once */
  constructor(options: RedisClusterLinkOptions) {
    const { url, name, commandTimeoutMs = 2000 } = options;
    if (url.cluster.length === 0) {
      throw new RangeError(`Cannot create ${name}: the cluster needs at least one node`);
    }
    this.#options = options;
    this.commandTimeoutMs = commandTimeoutMs;
    this.#known = url.cluster.map(({ host, port }) => `${host}:${port}`);
    this.where = `cluster via ${this.#known.join(",")}`;
    this.#refreshing = this.#refresh();
  }

  /** `ok` once every slot is served by a primary whose link is `ok`; else `degraded`. */
  get status(): "ok" | "degraded" {
    return this.#problem() === undefined ? "ok" : "degraded";
  }

  /** Why the cluster is not `ok`: the slot map's or a shard's fault, or `closed`. */
  get detail(): string {
    return this.#problem() ?? "ok";
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The primaries' links by `host:port`, as the slot map stands now. */
  get links(): ReadonlyMap<string, RedisLink> {
    return this.#links;
  }

  /** The link of the primary serving `key`'s slot, or undefined while no primary is known for it. */
  linkFor(key: string): RedisLink | undefined {
    const address = this.#slots[keySlot(key)];
    return address === undefined ? undefined : this.#links.get(address);
  }

  /** `host:port` of the primary serving `key`'s slot, if known. */
  addressOf(key: string): string | undefined {
    return this.#slots[keySlot(key)];
  }

  /** True when the primary at `address` serves `key`'s slot in the slot map as it stands. */
  serves(address: string, key: string): boolean {
    return this.#slots[keySlot(key)] === address;
  }

  /** Resolves true once `ok` (at once if `ok` now), or false after `timeoutMs` or on close. */
  ready(timeoutMs: number): Promise<boolean> {
    return awaitReady(this.status === "ok", this.#closed, this.#waiters, timeoutMs);
  }

  /** Asks for the slot map again soon (after a `MOVED` or `CLUSTERDOWN` reply). */
  refresh(): void {
    this.#schedule(0);
  }

  /** Stops asking, closes every node's link, resolves `ready` waiters with false. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#refreshTimer);
    for (const waiter of [...this.#waiters]) waiter(false);
    const links = [...this.#links.values()];
    this.#links.clear();
    await Promise.all([...links.map((link) => link.close()), ...this.#closing]);
    await this.#refreshing;
  }

  #problem(): string | undefined {
    if (this.#closed) return "closed";
    if (!this.#covered) return this.#mapDetail;
    for (const address of this.#primaries) {
      const link = this.#links.get(address);
      if (link === undefined) return `no link to ${address}`;
      if (link.status !== "ok") return `shard ${address}: ${link.detail}`;
    }
    return undefined;
  }

  /** Resolves waiters once `ok`; keeps asking for the slot map while it is not. */
  #check(): void {
    if (this.#closed) return;
    if (this.status !== "ok") {
      this.#schedule(this.#nextDelay());
      return;
    }
    this.#refreshAttempts = 0;
    this.#everOk = true;
    for (const waiter of [...this.#waiters]) waiter(true);
    if (this.#outageReported) {
      this.#outageReported = false;
      this.#options.onRecover?.();
    }
  }

  #nextDelay(): number {
    const { maxReconnectDelayMs = 2000 } = this.#options;
    return Math.min(maxReconnectDelayMs, FIRST_REFRESH_DELAY_MS * 2 ** this.#refreshAttempts++);
  }

  #schedule(delayMs: number): void {
    if (this.#closed || this.#refreshTimer !== undefined) return;
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined;
      // One refresh at a time; a request meanwhile is served by the one running.
      this.#refreshing ??= this.#refresh();
    }, delayMs);
  }

  /** One refresh; never rejects. */
  async #refresh(): Promise<void> {
    try {
      const ranges = await this.#askSlots();
      if (!this.#closed) this.#apply(ranges);
    } catch (err) {
      this.#mapDetail = errorMessage(err);
      if (!this.#outageReported && !this.#closed) {
        this.#outageReported = true;
        const { name, whileDown, onError } = this.#options;
        const what = this.#everOk ? "lost" : "cannot reach";
        onError?.(
          new Error(`${name} ${what} the ${this.where} (${this.#mapDetail}): ${whileDown}`, {
            cause: err,
          }),
        );
      }
    } finally {
      this.#refreshing = undefined;
    }
    this.#check();
  }

  /** `CLUSTER SLOTS` from the first node that answers, the nodes with a healthy link first. */
  async #askSlots(): Promise<SlotRange[]> {
    const healthy = [...this.#links].filter(([, link]) => link.status === "ok").map(([a]) => a);
    const order = [...new Set([...healthy, ...this.#known])];
    const failures: string[] = [];
    for (const address of order) {
      if (this.#closed) throw new Error("closed");
      try {
        return await askNode(address, this.#options);
      } catch (err) {
        failures.push(`${address}: ${errorMessage(err)}`);
      }
    }
    throw new Error(`no node answered CLUSTER SLOTS (${failures.join("; ")})`);
  }

  #apply(ranges: SlotRange[]): void {
    const slots: (string | undefined)[] = new Array(CLUSTER_SLOTS);
    const primaries = new Set<string>();
    for (const { from, to, primary, replicas } of ranges) {
      primaries.add(primary);
      for (const node of [primary, ...replicas]) {
        if (!this.#known.includes(node)) this.#known.push(node);
      }
      for (let slot = from; slot <= to && slot < CLUSTER_SLOTS; slot++) slots[slot] = primary;
    }
    let changed = false;
    let covered = true;
    for (let slot = 0; slot < CLUSTER_SLOTS; slot++) {
      if (slots[slot] !== this.#slots[slot]) changed = true;
      if (slots[slot] === undefined) covered = false;
    }
    this.#slots = slots;
    this.#primaries = primaries;
    this.#covered = covered;
    if (!covered) this.#mapDetail = "some slots are served by no primary";
    for (const [address, link] of this.#links) {
      if (primaries.has(address)) continue;
      this.#links.delete(address);
      const closing = link.close().finally(() => this.#closing.delete(closing));
      this.#closing.add(closing);
    }
    for (const address of primaries) {
      if (!this.#links.has(address)) this.#links.set(address, this.#open(address));
    }
    if (changed) this.#options.onTopology?.();
  }

  #open(address: string): RedisLink {
    const { url, onOpen, onConnect, onError, onTopology: _, onRecover: __, ...rest } =
      this.#options;
    const auth = url.password === undefined ? "" : `:${encodeURIComponent(url.password)}@`;
    return new RedisLink({
      ...rest,
      url: `redis://${auth}${address}`,
      ...(onOpen === undefined ? {} : { onOpen: (clients) => onOpen(clients, address) }),
      onConnect: (reconnected) => {
        onConnect?.(reconnected || this.#everOk);
        this.#check();
      },
      onError: (err) => {
        onError?.(err);
        // The primary may be gone for good: ask who serves its slots now.
        this.#schedule(0);
      },
    });
  }
}

/** One range of `CLUSTER SLOTS`: its slots, its primary's and replicas' `host:port`. */
interface SlotRange {
  from: number;
  to: number;
  primary: string;
  replicas: string[];
}

/** Asks one node for `CLUSTER SLOTS`, within the connect timeout. */
async function askNode(address: string, options: RedisClusterLinkOptions): Promise<SlotRange[]> {
  const { url, connectTimeoutMs = 5000 } = options;
  const colon = address.lastIndexOf(":");
  const client = createClient({
    socket: {
      host: address.slice(0, colon),
      port: Number(address.slice(colon + 1)),
      connectTimeout: connectTimeoutMs,
      reconnectStrategy: false,
    },
    disableOfflineQueue: true,
    ...(url.password === undefined ? {} : { password: url.password }),
  });
  // Faults reach us through connect() and the command; this only keeps them from being unhandled.
  client.on("error", () => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no answer in time")), connectTimeoutMs);
    });
    const ask = client.connect().then(() => client.sendCommand(["CLUSTER", "SLOTS"]));
    // Settled later when the timeout wins; its fault is the timeout's.
    ask.catch(() => {});
    return parseSlots(await Promise.race([ask, timeout]), address);
  } finally {
    clearTimeout(timer);
    try {
      client.destroy();
    } catch {
      // Never opened.
    }
  }
}

/** The ranges of a `CLUSTER SLOTS` reply; an empty host means the node asked. */
function parseSlots(reply: unknown, asked: string): SlotRange[] {
  if (!Array.isArray(reply) || reply.length === 0) {
    throw new Error("CLUSTER SLOTS answered no slots (is the cluster created?)");
  }
  const askedHost = asked.slice(0, asked.lastIndexOf(":"));
  const node = (entry: unknown): string => {
    if (!Array.isArray(entry) || entry.length < 2) throw new Error("malformed CLUSTER SLOTS reply");
    const host = String(entry[0]);
    return `${host === "" || host === "?" ? askedHost : host}:${Number(entry[1])}`;
  };
  return reply.map((range: unknown) => {
    if (!Array.isArray(range) || range.length < 3) throw new Error("malformed CLUSTER SLOTS reply");
    return {
      from: Number(range[0]),
      to: Number(range[1]),
      primary: node(range[2]),
      replicas: range.slice(3).map(node),
    };
  });
}
