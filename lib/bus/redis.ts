/**
 * The bus over Redis Pub/Sub, for instances in separate processes or
 * machines. One channel per room (`<prefix>:room:<room>`), one connection for
 * publishing and one for subscriptions; an instance subscribes only to rooms
 * with local members, so sequences are per origin and room.
 *
 * On a Redis Cluster the channel is `<prefix>:room:{<room>}` (the slot of
 * the room's history keys) and travels on sharded pub/sub: a pair of
 * connections per primary, `SPUBLISH`/`SSUBSCRIBE` on the shard serving the
 * room (lib/bus/_redis_links.ts). System envelopes (heartbeats,
 * revocations) use fixed rooms, hence one fixed channel each.
 *
 * Faults: while Redis is unreachable, publishes are dropped and counted
 * (nothing is queued), `health()` is `degraded`, the outage is reported once
 * through `onError`, and the bus reconnects on its own, subscribing again to
 * every room it holds. A server can therefore start before Redis does.
 *
 * Client: `@redis/client` (node-redis v5), the client Redis itself maintains;
 * ioredis is in best-effort maintenance and points new projects to it. The
 * pair of connections is supervised by {@linkcode RedisLink}, which replaces
 * both after any fault, so no half-known subscription state is left to
 * reconcile.
 *
 * @module
 */
import type { RedisClient, RedisTarget } from "../redis_link.ts";
import { type BusLinks, openBusLinks } from "./_redis_links.ts";
import { BaseBus, type BaseBusOptions } from "./_base.ts";
import { decodeEnvelope, encodeEnvelope } from "./_codec.ts";
import { type GapHandler, SequenceTracker } from "./_sequence.ts";
import type { Bus, BusHealth, PublishOptions } from "./types.ts";

/** Options for {@linkcode RedisBus}. */
export interface RedisBusOptions extends BaseBusOptions {
  /** `redis://` or `rediss://` URL, credentials included; Sentinel; or a Cluster. */
  url: RedisTarget;
  /**
   * Prefix of every channel name, so several apps can share one Redis.
   *
   * @default {"realtime"}
   */
  prefix?: string;
  /**
   * Largest wire envelope sent or accepted, in bytes; far below Redis's
   * 512 MB limit because every subscriber holds each message in memory.
   *
   * @default {1048576}
   */
  maxEnvelopeBytes?: number;
  /**
   * Publishes written but not yet acknowledged before more are dropped: the
   * bound on memory while Redis is slow but connected.
   *
   * @default {10000}
   */
  maxPendingPublishes?: number;
  /**
   * Time allowed to open a connection.
   *
   * @default {5000}
   */
  connectTimeoutMs?: number;
  /**
   * Longest wait between reconnect attempts (the wait doubles from 100 ms).
   *
   * @default {2000}
   */
  maxReconnectDelayMs?: number;
  /**
   * Called once when Redis becomes unreachable (at start or later), not again
   * until it has come back; also called when the envelope handler throws.
   */
  onError?: (error: Error) => void;
  /** Called when Redis is back after an outage reported through `onError`. */
  onRecover?: () => void;
  /** Called once per detected gap (logged by the caller). */
  onGap?: GapHandler;
}

/** Counters beyond {@linkcode BusHealth}, for metrics. */
export interface RedisBusStats {
  /** Publishes dropped because Redis was unreachable or too slow. */
  dropped: number;
  /** Publishes refused because the envelope exceeded `maxEnvelopeBytes`. */
  oversize: number;
  /** Messages on our channels that were not valid envelopes (or too large), ignored. */
  invalid: number;
}

const DEFAULT_MAX_ENVELOPE_BYTES = 1024 * 1024;

/**
 * The {@linkcode Bus} over Redis Pub/Sub. Prefer {@linkcode createRedisBus},
 * which waits for the first connection.
 *
 * @example
 * ```ts ignore
 * import { RedisBus } from "./redis.ts";
 * const bus = new RedisBus({ url: "redis://127.0.0.1:6379" });
 * await bus.ready(2000);
 * ```
 */
export class RedisBus extends BaseBus implements Bus {
  readonly #prefix: string;
  readonly #onError: (error: Error) => void;
  readonly #seq: SequenceTracker;
  /** Publisher and subscriber (per primary on a Cluster), opened and replaced together. */
  readonly #link: BusLinks;
  /** Rooms with local members: subscribed now, or again after a reconnect. */
  readonly #rooms = new Set<string>();
  #reconnected: () => void = () => {};
  #dropped = 0;
  #invalid = 0;

  /** @param options Redis URL, naming, bounds and hooks; connecting starts at once */
  constructor(options: RedisBusOptions) {
    const {
      url,
      prefix = "realtime",
      maxPendingPublishes = 10_000,
      connectTimeoutMs = 5000,
      maxReconnectDelayMs = 2000,
      onError = () => {},
      onRecover = () => {},
      onGap,
    } = options;
    super(options, {
      maxEnvelopeBytes: DEFAULT_MAX_ENVELOPE_BYTES,
      name: "Redis bus",
      // The client calls us from its reply parser, which would take a throw for
      // a protocol error and drop the connection.
      onHandlerError: (err) => onError(new Error("Envelope handler failed", { cause: err })),
    });
    if (!Number.isSafeInteger(maxPendingPublishes) || maxPendingPublishes < 1) {
      throw new RangeError(
        `Cannot create Redis bus: maxPendingPublishes must be a positive integer, current value is ${maxPendingPublishes}`,
      );
    }
    this.#prefix = prefix;
    this.#onError = onError;
    this.#seq = new SequenceTracker(this.instanceId, onGap, { scope: "room" });
    this.#link = openBusLinks({
      url,
      name: "Redis bus",
      whileDown: "messages stay on this instance and the bus reconnects in the background",
      connectTimeoutMs,
      maxReconnectDelayMs,
      maxPendingCommands: maxPendingPublishes,
      // Subscribed again before the link reports ok, so that `ok` and the
      // reconnect handler mean every room is listening again.
      onOpen: async (sub, serves) => {
        const channels = [...this.#rooms].map((room) => this.#channel(room)).filter(serves);
        await Promise.all(channels.map((channel) => this.#listen(sub, channel)));
      },
      // A slot moved to another primary (failover, resharding): its rooms
      // listen there now; where they already do, nothing is sent.
      onTopology: () => {
        for (const room of this.#rooms) {
          const sub = this.#link.pairFor(this.#channel(room))?.[1];
          if (sub?.isReady) this.#listen(sub, this.#channel(room)).catch(() => {});
        }
      },
      onConnect: (reconnected) => {
        // Envelopes published while we were away never reach us: let the rooms catch up.
        if (!reconnected) return;
        try {
          this.#reconnected();
        } catch (err) {
          this.#onError(new Error("Reconnect handler failed", { cause: err }));
        }
      },
      onError,
      onRecover,
    });
  }

  /** Counters for metrics. */
  get stats(): RedisBusStats {
    return { dropped: this.#dropped, oversize: this.oversize, invalid: this.#invalid };
  }

  /**
   * Resolves true once connected (at once if connected now), or false after
   * `timeoutMs` or on close; the bus keeps trying either way.
   */
  ready(timeoutMs: number): Promise<boolean> {
    return this.#link.ready(timeoutMs);
  }

  onReconnect(handler: () => void): void {
    this.#reconnected = handler;
  }

  protected send(room: string, frame: string, options: PublishOptions): void {
    const channel = this.#channel(room);
    const pub = this.#link.pairFor(channel)?.[0];
    // Not stamped while down: a sequence number then means "handed to Redis",
    // and receivers' gaps measure loss in transit, not this outage again.
    if (pub === undefined || !pub.isReady) {
      this.#dropped++;
      return;
    }
    const wire = encodeEnvelope(this.#seq.stamp(room, frame, options));
    try {
      const sent = this.#link.sharded ? pub.sPublish(channel, wire) : pub.publish(channel, wire);
      sent.catch((err: unknown) => {
        this.#dropped++;
        // The room's slot moved (resharding): learn where it went.
        if (err instanceof Error && err.message.startsWith("MOVED")) this.#link.refresh();
      });
    } catch {
      this.#dropped++;
    }
  }

  /**
   * Resolves once Redis acknowledged the SUBSCRIBE. While Redis is down it
   * resolves at once: local delivery goes on, and the reconnect subscribes.
   */
  async subscribe(room: string): Promise<void> {
    if (this.closed) return;
    this.#rooms.add(room);
    const channel = this.#channel(room);
    const sub = this.#link.pairFor(channel)?.[1];
    if (sub === undefined) return;
    try {
      await this.#listen(sub, channel);
    } catch {
      // The connection failed before the acknowledgement; the reconnect
      // subscribes every room in #rooms, this one included.
    }
  }

  async unsubscribe(room: string): Promise<void> {
    if (!this.#rooms.delete(room)) return;
    this.#seq.forget(room);
    const channel = this.#channel(room);
    const sub = this.#link.pairFor(channel)?.[1];
    if (sub === undefined) return;
    try {
      await (this.#link.sharded
        ? sub.sUnsubscribe(channel, this.#listener)
        : sub.unsubscribe(channel, this.#listener));
    } catch {
      // The connection is gone, and the next one will not subscribe this room.
    }
  }

  health(): BusHealth {
    const status = this.#link.status;
    const health: BusHealth = {
      status,
      transport: "redis",
      gaps: this.#seq.gaps,
      dropped: this.stats.dropped,
    };
    if (status === "degraded") health.detail = this.#link.detail;
    return health;
  }

  /**
   * {@linkcode RedisBus.health} as far as `room` is concerned: on a Cluster
   * `ok` while the shard carrying its channel is reachable, whatever the
   * other shards do; on one Redis the bus's health.
   */
  healthOf(room: string): BusHealth {
    const health = this.health();
    if (!this.#link.sharded || health.status === "ok") return health;
    const pair = this.#link.pairFor(this.#channel(room));
    return pair !== undefined && pair.every((client) => client.isReady)
      ? { ...health, status: "ok" }
      : health;
  }

  async close(): Promise<void> {
    if (!this.shut()) return;
    this.#rooms.clear();
    // Lets publishes already written be acknowledged, for a bounded time.
    await this.#link.close();
  }

  readonly #listener = (message: string, channel: string): void => {
    if (this.closed) return;
    const envelope = decodeEnvelope(message, this.maxEnvelopeBytes);
    if (envelope === undefined || channel !== this.#channel(envelope.room)) {
      this.#invalid++;
      return;
    }
    // Checked before the tracker so that the rooms it remembers stay the subscribed ones.
    if (!this.#rooms.has(envelope.room)) return;
    // A positioned envelope may be our own, published by the history store's
    // script: the room's offsets, not origin sequences, order and dedupe it.
    if (envelope.position === undefined && !this.#seq.accept(envelope)) return;
    this.deliver(envelope);
  };

  #listen(sub: RedisClient, channel: string): Promise<void> {
    return this.#link.sharded
      ? sub.sSubscribe(channel, this.#listener)
      : sub.subscribe(channel, this.#listener);
  }

  #channel(room: string): string {
    return `${this.#prefix}:room:${this.#link.sharded ? `{${room}}` : room}`;
  }
}

/** Options for {@linkcode createRedisBus}. */
export interface CreateRedisBusOptions extends RedisBusOptions {
  /**
   * How long to wait for the first connection before returning a degraded bus
   * that keeps reconnecting.
   *
   * @default {2000}
   */
  startTimeoutMs?: number;
}

/**
 * Creates a {@linkcode RedisBus} and waits (up to `startTimeoutMs`) for its
 * first connection. Never rejects for an unreachable Redis: the server can
 * start first; `onError` reports the outage once, `health()` shows it, and
 * the bus connects when Redis comes up.
 *
 * @example
 * ```ts ignore
 * import { createRedisBus } from "./redis.ts";
 * const bus = await createRedisBus({
 *   url: "redis://127.0.0.1:6379",
 *   onError: (err) => console.error(err.message),
 * });
 * ```
 */
export async function createRedisBus(options: CreateRedisBusOptions): Promise<RedisBus> {
  const { startTimeoutMs = 2000, ...busOptions } = options;
  const bus = new RedisBus(busOptions);
  await bus.ready(startTimeoutMs);
  return bus;
}
