/**
 * Counters the server keeps, and their Prometheus exposition through
 * prom-client. Hot-path counters are plain numbers bumped in place; they are
 * copied into prom-client only when `/metrics` is scraped.
 *
 * @module
 */
import client from "prom-client";
import type { AuthFailureReason } from "./codes.ts";
import type { EdgeStats } from "./edge/node_server.ts";
import type { WebhookStats } from "./webhooks/engine.ts";

/** Plain counters, cheap enough to bump per frame. */
export class Counters {
  joins = 0;
  leaves = 0;
  messagesIn = 0;
  messagesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  rateLimited = 0;
  floodClosed = 0;
  framesTooBig = 0;
  slowConsumers = 0;
  badRequests = 0;
  connectionsTotal = 0;
  /** Requests answered `unavailable` (history store or its bus down). */
  unavailable = 0;
  /** History publishes answered as duplicates of an earlier one (same id). */
  duplicates = 0;
  readonly denials = new Map<string, number>();
  readonly authFailures = new Map<AuthFailureReason, number>();
  readonly refusals = new Map<number, number>();
  /** Ended connections by close code (see {@linkcode Counters.closeLabel}). */
  readonly closes = new Map<string, number>();
  /** Pusher HTTP API answers, keyed `"<endpoint> <status>"` (both from closed sets). */
  readonly pusherApi = new Map<string, number>();

  /** Adds one to a keyed counter. */
  static bump<K>(map: Map<K, number>, key: K): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }

  /**
   * The label for a close code: the code itself for the protocol's range
   * (1000–1015) and our own codes (4400–4499), `"other"` otherwise, so a
   * client choosing arbitrary application codes cannot create a metric
   * series per code.
   */
  static closeLabel(code: number): string {
    return (code >= 1000 && code <= 1015) || (code >= 4400 && code <= 4499)
      ? String(code)
      : "other";
  }
}

/** Live values read at scrape time. */
export interface Gauges {
  connections(): number;
  rooms(): number;
  busGaps(): number;
  busDropped(): number;
  busUp(): boolean;
  /** Messages of history rooms lost for good before this instance delivered them. */
  historyGaps(): number;
  /** 1 when the history store is reachable. */
  historyUp(): boolean;
  /** Revocations held by this instance. */
  revocationsActive(): number;
  /** Connections closed 4403 because their user or token was revoked. */
  revokedCloses(): number;
}

/** One Pusher app's figures on this isolate (see {@linkcode Metrics.watchPusher}). */
export interface PusherAppFigures {
  /** The app's id. */
  readonly app: string;
  readonly connections: number;
  /** Channels with subscribers on this isolate. */
  readonly channels: number;
  /** Frames received from the app's clients. */
  readonly messagesIn: number;
  /** Frames sent to the app's clients. */
  readonly messagesOut: number;
}

/** A counter whose value is read from `read` at scrape time. */
function scrapedCounter(
  registers: client.Registry[],
  name: string,
  help: string,
  read: () => number,
): client.Counter {
  return new client.Counter({
    name,
    help,
    registers,
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** The server's Prometheus registry. */
export class Metrics {
  readonly counters = new Counters();
  readonly registry = new client.Registry();
  readonly #handshake: client.Histogram;

  /** @param gauges live values */
  constructor(gauges: Gauges) {
    const registers = [this.registry];
    this.#registerLive(gauges, registers);
    this.#registerTraffic(registers);
    this.#handshake = new client.Histogram({
      name: "realtime_handshake_seconds",
      help: "Time from request to upgrade for accepted WebSocket handshakes",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
  }

  /** Gauges and counters read from live state at scrape time. */
  #registerLive(gauges: Gauges, registers: client.Registry[]): void {
    const c = this.counters;
    const counter = (name: string, help: string, read: () => number) =>
      scrapedCounter(registers, name, help, read);
    new client.Gauge({
      name: "realtime_connections",
      help: "Open WebSocket connections on this isolate",
      registers,
      collect() {
        this.set(gauges.connections());
      },
    });
    new client.Gauge({
      name: "realtime_rooms",
      help: "Rooms with members on this isolate",
      registers,
      collect() {
        this.set(gauges.rooms());
      },
    });
    new client.Gauge({
      name: "realtime_bus_up",
      help: "1 when the bus to other instances is healthy",
      registers,
      collect() {
        this.set(gauges.busUp() ? 1 : 0);
      },
    });
    counter("realtime_bus_gaps_total", "Envelopes lost between instances", gauges.busGaps);
    counter(
      "realtime_bus_dropped_total",
      "Envelopes not handed to the bus (transport down or too slow)",
      gauges.busDropped,
    );
    new client.Gauge({
      name: "realtime_history_store_up",
      help: "1 when the history store is reachable",
      registers,
      collect() {
        this.set(gauges.historyUp() ? 1 : 0);
      },
    });
    counter(
      "realtime_history_gaps_total",
      "History-room messages gone from the store before this instance delivered them",
      gauges.historyGaps,
    );
    counter(
      "realtime_unavailable_total",
      "Requests answered unavailable (history store down)",
      () => c.unavailable,
    );
    counter(
      "realtime_duplicates_total",
      "History publishes recognised as resends (same id) and not delivered again",
      () => c.duplicates,
    );
    new client.Gauge({
      name: "realtime_revocations_active",
      help: "Revocations (users and tokens) in force on this isolate",
      registers,
      collect() {
        this.set(gauges.revocationsActive());
      },
    });
    counter(
      "realtime_revoked_closes_total",
      "Connections closed 4403 because their user or token was revoked",
      gauges.revokedCloses,
    );
  }

  /** Counters bumped on the hot paths (plain numbers), copied out at scrape time. */
  #registerTraffic(registers: client.Registry[]): void {
    const c = this.counters;
    const counter = (name: string, help: string, read: () => number) =>
      scrapedCounter(registers, name, help, read);
    const labelled = <K>(name: string, help: string, label: string, map: Map<K, number>) =>
      new client.Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          this.reset();
          for (const [key, value] of map) this.inc({ [label]: String(key) }, value);
        },
      });
    counter("realtime_connections_total", "Connections accepted", () => c.connectionsTotal);
    counter("realtime_joins_total", "Rooms joined", () => c.joins);
    counter("realtime_leaves_total", "Rooms left (by request or on close)", () => c.leaves);
    counter("realtime_messages_in_total", "Frames received from clients", () => c.messagesIn);
    counter("realtime_messages_out_total", "Frames sent to clients", () => c.messagesOut);
    counter("realtime_bytes_in_total", "Bytes received from clients", () => c.bytesIn);
    counter("realtime_bytes_out_total", "Bytes sent to clients", () => c.bytesOut);
    counter(
      "realtime_rate_limited_total",
      "Frames refused by the rate limiter",
      () => c.rateLimited,
    );
    counter(
      "realtime_flood_closed_total",
      "Connections closed 4429 for flooding",
      () => c.floodClosed,
    );
    counter("realtime_frames_too_big_total", "Connections closed 1009", () => c.framesTooBig);
    counter(
      "realtime_slow_consumers_total",
      "Connections closed 1008 as slow consumers",
      () => c.slowConsumers,
    );
    counter("realtime_bad_requests_total", "Frames answered bad_request", () => c.badRequests);
    labelled("realtime_join_denials_total", "Joins refused", "code", c.denials);
    labelled("realtime_auth_failures_total", "Failed authentications", "reason", c.authFailures);
    labelled("realtime_handshake_refusals_total", "Handshakes refused", "status", c.refusals);
    labelled("realtime_closes_total", "Connections ended, by close code", "code", c.closes);
    new client.Counter({
      name: "realtime_pusher_api_requests_total",
      help: "Pusher HTTP API requests, by endpoint and answer status",
      labelNames: ["endpoint", "status"],
      registers,
      collect() {
        this.reset();
        for (const [key, value] of c.pusherApi) {
          const [endpoint = "", status = ""] = key.split(" ");
          this.inc({ endpoint, status }, value);
        }
      },
    });
  }

  /**
   * Exposes the front door's counters (lib/edge/node_server.ts): open
   * sockets, their cap, and the connections it refused at accept, timed out
   * before their request head was complete, or shed near the cap. Called
   * once the listener is up; `Deno.serve` (`HTTP_SERVER=deno`) has none.
   */
  watchEdge(stats: () => EdgeStats, maxSockets: number): void {
    const registers = [this.registry];
    new client.Gauge({
      name: "realtime_edge_sockets",
      help: "TCP connections open on this isolate (HTTP, keep-alive and WebSockets)",
      registers,
      collect() {
        this.set(stats().sockets);
      },
    });
    new client.Gauge({
      name: "realtime_edge_max_sockets",
      help: "This isolate's socket cap, below the process's open-file limit",
      registers,
      collect() {
        this.set(maxSockets);
      },
    });
    const counter = (name: string, help: string, key: Exclude<keyof EdgeStats, "sockets">) =>
      scrapedCounter(registers, name, help, () => stats()[key]);
    counter(
      "realtime_edge_refused_total",
      "Connections refused at accept (503): cap reached",
      "refused",
    );
    counter(
      "realtime_edge_head_timeouts_total",
      "Connections closed for not finishing a request head within HEADERS_TIMEOUT_MS",
      "headTimeouts",
    );
    counter(
      "realtime_edge_shed_total",
      "Connections still sending their request head closed to make room near the cap",
      "shed",
    );
  }

  /**
   * Exposes whether limits are shared now (`LIMITS_STORE`: 1, or 0 while
   * each isolate applies its own) and the limits store calls made. Called
   * once at start when `LIMITS_STORE` is set.
   */
  watchLimits(shared: () => boolean, calls: () => number): void {
    const registers = [this.registry];
    new client.Gauge({
      name: "realtime_limits_shared",
      help: "1 while limits are shared through LIMITS_STORE, 0 while each isolate applies its own",
      registers,
      collect() {
        this.set(shared() ? 1 : 0);
      },
    });
    scrapedCounter(registers, "realtime_limits_store_calls_total", "Limits store calls", calls);
  }

  /**
   * Exposes the webhook engine's counters and queue depth (lib/webhooks/).
   * Called once at start when a `WEBHOOK_URL` is set.
   */
  watchWebhooks(stats: () => WebhookStats): void {
    const registers = [this.registry];
    const counter = (name: string, help: string, key: Exclude<keyof WebhookStats, "depth">) =>
      scrapedCounter(registers, name, help, () => stats()[key]);
    counter("realtime_webhook_sent_total", "Webhook events delivered (2xx)", "sent");
    counter(
      "realtime_webhook_failed_total",
      "Webhook POSTs that failed (network error, timeout, non-2xx)",
      "failed",
    );
    counter(
      "realtime_webhook_retried_total",
      "Webhook events scheduled for another attempt",
      "retried",
    );
    counter(
      "realtime_webhook_dropped_total",
      "Webhook events given up (retry window over, rejected, queue full), each audited",
      "dropped",
    );
    new client.Gauge({
      name: "realtime_webhook_queue_depth",
      help: "Webhook events waiting, as this isolate last read its queue",
      registers,
      collect() {
        this.set(stats().depth);
      },
    });
  }

  /**
   * Exposes the Pusher front door's figures per app (connections, channels,
   * messages in and out), read at scrape time. Called once, when the server
   * has Pusher apps.
   */
  watchPusher(read: () => Iterable<PusherAppFigures>): void {
    const registers = [this.registry];
    const series = (
      kind: "gauge" | "counter",
      name: string,
      help: string,
      key: Exclude<keyof PusherAppFigures, "app">,
    ) => {
      const collect = function (this: client.Gauge | client.Counter) {
        this.reset();
        for (const figures of read()) {
          if (this instanceof client.Gauge) this.set({ app: figures.app }, figures[key]);
          else this.inc({ app: figures.app }, figures[key]);
        }
      };
      const options = { name, help, labelNames: ["app"], registers, collect };
      return kind === "gauge" ? new client.Gauge(options) : new client.Counter(options);
    };
    series("gauge", "realtime_pusher_connections", "Pusher connections, per app", "connections");
    series("gauge", "realtime_pusher_channels", "Pusher channels with subscribers", "channels");
    series(
      "counter",
      "realtime_pusher_messages_in_total",
      "Frames received from Pusher clients, per app",
      "messagesIn",
    );
    series(
      "counter",
      "realtime_pusher_messages_out_total",
      "Frames sent to Pusher clients, per app",
      "messagesOut",
    );
  }

  /**
   * Series of the synchronous hooks: `realtime_hook_calls_total{hook,result}`
   * and `realtime_hook_seconds{hook}`. Returns what each call reports to.
   */
  watchHooks(): (hook: string, result: string, seconds: number) => void {
    const registers = [this.registry];
    const calls = new client.Counter({
      name: "realtime_hook_calls_total",
      help: "Hook calls by hook and result (ok, or why it failed)",
      labelNames: ["hook", "result"],
      registers,
    });
    const seconds = new client.Histogram({
      name: "realtime_hook_seconds",
      help: "Time a hook call took, answer included (failures at once too)",
      labelNames: ["hook"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    return (hook, result, took) => {
      calls.inc({ hook, result });
      seconds.observe({ hook }, took);
    };
  }

  /** Records one accepted handshake's latency. */
  observeHandshake(seconds: number): void {
    this.#handshake.observe(seconds);
  }

  /** The exposition text. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** The exposition content type. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
