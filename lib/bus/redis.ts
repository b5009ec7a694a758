/**
 * The bus over Redis Pub/Sub, for instances in separate processes or
 * machines. One channel per room (`<prefix>:room:<room>`), one connection for
 * publishing and one for subscriptions; an instance subscribes only to rooms
 * with local members, so sequences are per origin and room.
 *
 * Faults: while Redis is unreachable, publishes are dropped and counted
 * (nothing is queued), `health()` is `degraded`, the outage is reported once
 * through `onError`, and the bus reconnects on its own, subscribing again to
 * every room it holds. A server can therefore start before Redis does.
 *
 * Client: `@redis/client` (node-redis v5), the client Redis itself maintains;
 * ioredis is in best-effort maintenance and points new projects to it. The
 * client's own reconnection is switched off: its back-off sleep cannot be
 * cancelled, so a bus closed during an outage would leave a timer behind, and
 * a fresh pair of connections per attempt leaves no half-known subscription
 * state to reconcile.
 *
 * @module
 */
import { createClient } from "@redis/client";
import { decodeEnvelope, encodeEnvelope, fitsEnvelope } from "./_codec.ts";
import { type GapHandler, SequenceTracker } from "./_sequence.ts";
import type { Bus, BusHealth, Envelope, EnvelopeHandler, PublishOptions } from "./types.ts";

type RedisClient = ReturnType<typeof createClient>;

/** Options for {@linkcode RedisBus}. */
export interface RedisBusOptions {
  /** `redis://` or `rediss://` URL, credentials included. */
  url: string;
  /**
   * Prefix of every channel name, so several apps can share one Redis.
   *
   * @default {"realtime"}
   */
  prefix?: string;
  /** @default crypto.randomUUID() */
  instanceId?: string;
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

/** One attempt's pair of connections; replaced as a whole after any fault. */
interface Connection {
  pub: RedisClient;
  sub: RedisClient;
  failed: boolean;
}

const DEFAULT_MAX_ENVELOPE_BYTES = 1024 * 1024;
const FIRST_RECONNECT_DELAY_MS = 100;
/** How long `close()` waits for publishes already written to be acknowledged. */
const CLOSE_FLUSH_MS = 1000;

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
export class RedisBus implements Bus {
  readonly instanceId: string;
  readonly maxEnvelopeBytes: number;
  readonly #url: string;
  readonly #where: string;
  readonly #prefix: string;
  readonly #maxPending: number;
  readonly #connectTimeoutMs: number;
  readonly #maxReconnectDelayMs: number;
  readonly #onError: (error: Error) => void;
  readonly #onRecover: () => void;
  readonly #seq: SequenceTracker;
  /** Rooms with local members: subscribed now, or again after a reconnect. */
  readonly #rooms = new Set<string>();
  readonly #waiters = new Set<(connected: boolean) => void>();
  #handler: EnvelopeHandler = () => {};
  #reconnected: () => void = () => {};
  #conn: Connection | undefined;
  #connecting: Promise<void>;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #attempts = 0;
  #status: BusHealth["status"] = "degraded";
  #detail = "connecting";
  #everConnected = false;
  /** Set after the first connection, so only later ones count as reconnects. */
  #everConnectedBefore = false;
  #outageReported = false;
  #closed = false;
  #dropped = 0;
  #oversize = 0;
  #invalid = 0;

  /** @param options Redis URL, naming, bounds and hooks; connecting starts at once */
  constructor(options: RedisBusOptions) {
    const {
      url,
      prefix = "realtime",
      instanceId = crypto.randomUUID(),
      maxEnvelopeBytes = DEFAULT_MAX_ENVELOPE_BYTES,
      maxPendingPublishes = 10_000,
      connectTimeoutMs = 5000,
      maxReconnectDelayMs = 2000,
      onError = () => {},
      onRecover = () => {},
      onGap,
    } = options;
    this.#where = describeUrl(url);
    for (const [name, value] of Object.entries({ maxEnvelopeBytes, maxPendingPublishes })) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(
          `Cannot create Redis bus: ${name} must be a positive integer, current value is ${value}`,
        );
      }
    }
    this.instanceId = instanceId;
    this.maxEnvelopeBytes = maxEnvelopeBytes;
    this.#url = url;
    this.#prefix = prefix;
    this.#maxPending = maxPendingPublishes;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#maxReconnectDelayMs = maxReconnectDelayMs;
    this.#onError = onError;
    this.#onRecover = onRecover;
    this.#seq = new SequenceTracker(instanceId, onGap, { scope: "room" });
    this.#connecting = this.#connect();
  }

  /** Counters for metrics. */
  get stats(): RedisBusStats {
    return { dropped: this.#dropped, oversize: this.#oversize, invalid: this.#invalid };
  }

  /**
   * Resolves true once connected (at once if connected now), or false after
   * `timeoutMs` or on close; the bus keeps trying either way.
   */
  ready(timeoutMs: number): Promise<boolean> {
    if (this.#status === "ok") return Promise.resolve(true);
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (connected: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve(connected);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#waiters.add(done);
    });
  }

  onEnvelope(handler: EnvelopeHandler): void {
    this.#handler = handler;
  }

  onReconnect(handler: () => void): void {
    this.#reconnected = handler;
  }

  fits(room: string, frame: string): boolean {
    return fitsEnvelope(this.instanceId, room, frame, this.maxEnvelopeBytes);
  }

  publish(room: string, frame: string, options?: PublishOptions): void {
    if (this.#closed) return;
    if (!this.fits(room, frame)) {
      this.#oversize++;
      return;
    }
    const conn = this.#conn;
    // Not stamped while down: a sequence number then means "handed to Redis",
    // and receivers' gaps measure loss in transit, not this outage again.
    if (conn === undefined || !conn.pub.isReady) {
      this.#dropped++;
      return;
    }
    const wire = encodeEnvelope(this.#seq.stamp(room, frame, options));
    try {
      conn.pub.publish(this.#channel(room), wire).catch(() => this.#dropped++);
    } catch {
      this.#dropped++;
    }
  }

  /**
   * Resolves once Redis acknowledged the SUBSCRIBE. While Redis is down it
   * resolves at once: local delivery goes on, and the reconnect subscribes.
   */
  async subscribe(room: string): Promise<void> {
    if (this.#closed) return;
    this.#rooms.add(room);
    const conn = this.#conn;
    if (conn === undefined) return;
    try {
      await conn.sub.subscribe(this.#channel(room), this.#listener);
    } catch {
      // The connection failed before the acknowledgement; the reconnect
      // subscribes every room in #rooms, this one included.
    }
  }

  async unsubscribe(room: string): Promise<void> {
    if (!this.#rooms.delete(room)) return;
    this.#seq.forget(room);
    const conn = this.#conn;
    if (conn === undefined) return;
    try {
      await conn.sub.unsubscribe(this.#channel(room), this.#listener);
    } catch {
      // The connection is gone, and the next one will not subscribe this room.
    }
  }

  health(): BusHealth {
    const health: BusHealth = {
      status: this.#status,
      transport: "redis",
      gaps: this.#seq.gaps,
      dropped: this.stats.dropped,
    };
    if (this.#status === "degraded") health.detail = this.#detail;
    return health;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#rooms.clear();
    for (const waiter of this.#waiters) waiter(false);
    const conn = this.#conn;
    this.#conn = undefined;
    if (conn !== undefined) {
      conn.failed = true;
      await Promise.all([closeGracefully(conn.pub), destroy(conn.sub)]);
    }
    // A connect in flight cannot be aborted (the client only tracks a socket
    // once it is open); it notices #closed when it settles and closes its own.
    await this.#connecting;
  }

  readonly #listener = (message: string, channel: string): void => {
    if (this.#closed) return;
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
    this.#deliver(envelope);
  };

  #deliver(envelope: Envelope): void {
    // The client calls us from its reply parser, which would take a throw for
    // a protocol error and drop the connection.
    try {
      this.#handler(envelope);
    } catch (err) {
      this.#onError(new Error("Envelope handler failed", { cause: err }));
    }
  }

  #channel(room: string): string {
    return `${this.#prefix}:room:${room}`;
  }

  #client(): RedisClient {
    return createClient({
      url: this.#url,
      disableOfflineQueue: true,
      commandsQueueMaxLength: this.#maxPending,
      socket: { connectTimeout: this.#connectTimeoutMs, reconnectStrategy: false },
    });
  }

  /** One connection attempt; never rejects (faults go to #fail, which schedules the next). */
  async #connect(): Promise<void> {
    this.#retryTimer = undefined;
    const conn: Connection = { pub: this.#client(), sub: this.#client(), failed: false };
    let open = false;
    for (const client of [conn.pub, conn.sub]) {
      // While connecting, the same failure also rejects connect(); reacting
      // twice would destroy a client whose socket is not tracked yet.
      client.on("error", (err: unknown) => {
        if (open) this.#fail(conn, err);
      });
    }
    const results = await Promise.allSettled([conn.pub.connect(), conn.sub.connect()]);
    const failure = results.find((r) => r.status === "rejected");
    if (failure !== undefined || !conn.pub.isReady || !conn.sub.isReady) {
      this.#fail(conn, failure?.reason ?? new Error("connection closed while opening"));
      return;
    }
    if (this.#closed) {
      conn.failed = true;
      await Promise.all([destroy(conn.pub), destroy(conn.sub)]);
      return;
    }
    open = true;
    this.#conn = conn;
    try {
      await Promise.all(
        [...this.#rooms].map((room) => conn.sub.subscribe(this.#channel(room), this.#listener)),
      );
    } catch (err) {
      this.#fail(conn, err);
      return;
    }
    if (conn.failed || this.#closed) return;
    this.#attempts = 0;
    this.#status = "ok";
    this.#everConnected = true;
    for (const waiter of this.#waiters) waiter(true);
    if (this.#outageReported) {
      this.#outageReported = false;
      this.#onRecover();
    }
    // Envelopes published while we were away never reach us: let the rooms catch up.
    if (this.#everConnectedBefore) {
      try {
        this.#reconnected();
      } catch (err) {
        this.#onError(new Error("Reconnect handler failed", { cause: err }));
      }
    }
    this.#everConnectedBefore = true;
  }

  #fail(conn: Connection, err: unknown): void {
    if (conn.failed) return;
    conn.failed = true;
    if (this.#conn === conn) this.#conn = undefined;
    void destroy(conn.pub);
    void destroy(conn.sub);
    if (this.#closed) return;
    const reason = err instanceof Error ? err.message || err.name : String(err);
    this.#status = "degraded";
    this.#detail = reason;
    if (!this.#outageReported) {
      this.#outageReported = true;
      const what = this.#everConnected
        ? `lost the connection to ${this.#where}`
        : `cannot reach ${this.#where}`;
      this.#onError(
        new Error(
          `Redis bus ${what} (${reason}): messages stay on this instance and the bus reconnects in the background`,
          { cause: err },
        ),
      );
    }
    const delay = Math.min(
      this.#maxReconnectDelayMs,
      FIRST_RECONNECT_DELAY_MS * 2 ** this.#attempts++,
    );
    // Jitter keeps a fleet that lost Redis together from reconnecting in lockstep.
    this.#retryTimer = setTimeout(() => {
      this.#connecting = this.#connect();
    }, delay * (0.5 + Math.random() / 2));
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

/** Host and port of a Redis URL, for messages: never the credentials. */
function describeUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError("Cannot create Redis bus: url is not a valid URL");
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new TypeError(
      `Cannot create Redis bus: url must use redis: or rediss:, current value is ${parsed.protocol}`,
    );
  }
  return `${parsed.protocol}//${parsed.hostname}:${parsed.port || "6379"}`;
}

/** Destroys a client whatever its state; a closed client throws, which is fine here. */
function destroy(client: RedisClient): Promise<void> {
  try {
    client.destroy();
  } catch {
    // Already closed.
  }
  return Promise.resolve();
}

/** Lets publishes already written reach Redis, for a bounded time, then destroys. */
async function closeGracefully(client: RedisClient): Promise<void> {
  if (!client.isReady) return destroy(client);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_FLUSH_MS));
  try {
    await Promise.race([client.close(), timeout]);
  } catch {
    // Closing failed; destroying below is all that is left.
  } finally {
    clearTimeout(timer);
  }
  await destroy(client);
}
