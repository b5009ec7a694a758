/**
 * Where events go and how: a {@linkcode WebhookSink} is one receiver URL
 * with the few things two webhook protocols differ in (which events it
 * takes, the body and headers of a batch, batch size and wait, back-off and
 * retry window). {@linkcode nativeSink} is this server's format (issue 18);
 * {@linkcode pusherSink} is Pusher's (issue 17). The engine
 * (`engine.ts`) is the same for both.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { WebhookEvent } from "./events.ts";
import { newEventId } from "./events.ts";
import { hmacHex, SIGNATURE_HEADER, signBody } from "./signature.ts";

/** The body and headers of one batch (`content-type: application/json` is added). */
export interface EncodedBatch {
  body: string;
  headers: Record<string, string>;
}

/** How long a sink's events wait and retry. */
export interface RetryPolicy {
  /** The first retry's delay, in ms; each next one doubles (with ±20% jitter). */
  initialMs: number;
  /** The longest delay between two attempts, in ms. */
  maxMs: number;
  /** How long after it was queued an event is still retried, in ms; then it is dropped and audited. */
  forMs: number;
}

/** One receiver, and what its protocol needs. */
export interface WebhookSink {
  /**
   * Names this sink's queue: the same on every node and across restarts
   * (so a restarted node finds the events queued before), and different for
   * every receiver. Letters, digits, `:`, `_`, `-` and `.`, at most 100.
   */
  readonly id: string;
  /** The receiver's URL (http or https). */
  readonly url: string;
  /** Whether this sink takes `event` (its protocol, its `events` filter). */
  accepts(event: WebhookEvent): boolean;
  /** The body and headers of a batch, signed as its protocol signs. */
  encode(events: readonly WebhookEvent[], nowMs: number): EncodedBatch;
  /** At most this many events per POST. */
  readonly maxBatch: number;
  /** An event waits at most about this long for its batch to fill, in ms. */
  readonly maxWaitMs: number;
  /** Back-off and retry window. */
  readonly retry: RetryPolicy;
}

/** A stable, key-safe id for a receiver: the protocol and a hash of its URL. */
export function sinkId(protocol: string, url: string): string {
  return `${protocol}:${createHash("sha256").update(url).digest("hex").slice(0, 16)}`;
}

/** Options for {@linkcode nativeSink}. */
export interface NativeSinkOptions {
  /** `WEBHOOK_URL` (one of them). */
  url: string;
  /** `WEBHOOK_SECRET`: signs every batch. */
  secret: string;
  /** `WEBHOOK_EVENTS`: the event names it takes. */
  events: readonly string[];
  /** `WEBHOOK_RETRY_SEC` in ms. @default 3_600_000 */
  retryForMs?: number;
  /** Back-off overrides (tests). @default {{ initialMs: 1000, maxMs: 60_000 }} */
  backoff?: Partial<Pick<RetryPolicy, "initialMs" | "maxMs">>;
}

/**
 * A receiver of this server's own webhooks: `POST {id, time_ms, events}`
 * signed `X-Realtime-Signature: t=…,v1=…`, up to 100 events or 500 ms per
 * batch, retried from ~1 s doubling to 60 s for `retryForMs`.
 *
 * @example
 * ```ts
 * import { nativeSink } from "./sinks.ts";
 * const sink = nativeSink({ url: "https://app.example/hooks", secret: "s".repeat(32), events: ["room_vacated"] });
 * const { body, headers } = sink.encode([{ id: "e1", name: "room_vacated", time_ms: 1, room: "lobby" }], Date.now());
 * console.assert(JSON.parse(body).events.length === 1 && "X-Realtime-Signature" in headers);
 * ```
 */
export function nativeSink(options: NativeSinkOptions): WebhookSink {
  const { url, secret, retryForMs = 3_600_000 } = options;
  const names = new Set(options.events);
  return {
    id: sinkId("native", url),
    url,
    accepts: (event) => names.has(event.name),
    encode(events, nowMs) {
      const body = JSON.stringify({ id: newEventId(nowMs), time_ms: nowMs, events });
      return { body, headers: { [SIGNATURE_HEADER]: signBody(secret, body, nowMs) } };
    },
    maxBatch: 100,
    maxWaitMs: 500,
    retry: { initialMs: 1000, maxMs: 60_000, ...options.backoff, forMs: retryForMs },
  };
}

/** Options for {@linkcode pusherSink}. */
export interface PusherSinkOptions {
  /** The webhook's `url`. */
  url: string;
  /** The app's key (`X-Pusher-Key`). */
  key: string;
  /** The app's secret: `X-Pusher-Signature` is its HMAC-SHA256 of the body. */
  secret: string;
  /** The webhook's `events` filter: the Pusher event names it takes. */
  events: readonly string[];
  /** The webhook's extra `headers`. */
  headers?: Record<string, string>;
  /** Which events are this app's (one engine can carry several apps). @default every event */
  ownEvent?: (event: WebhookEvent) => boolean;
  /** Fields of a queued event that are not Pusher's and must not be sent (e.g. `app`). @default ["app"] */
  privateFields?: readonly string[];
  /** Back-off and retry window overrides. @default {{ initialMs: 1000, maxMs: 60_000, forMs: 600_000 }} */
  retry?: Partial<RetryPolicy>;
}

/**
 * A Pusher webhook receiver: `POST {time_ms, events}` with `X-Pusher-Key`
 * and `X-Pusher-Signature` (hex HMAC-SHA256 of the body with the app
 * secret), up to 50 events or 1 s per batch, retried from ~1 s doubling
 * (capped at 60 s) for 10 minutes (Pusher promises at least 5). Events are
 * queued with their Pusher fields (`name`, `channel`, `user_id`, `event`,
 * `data`, `socket_id`) beside the engine's `id` and `time_ms`; the `id`
 * stays internal (Pusher's body has none) and keeps a retry from becoming
 * two events.
 *
 * @example
 * ```ts
 * import { pusherSink } from "./sinks.ts";
 * const sink = pusherSink({ url: "https://app.example/pusher", key: "k", secret: "s", events: ["channel_vacated"] });
 * const { headers } = sink.encode([{ id: "e1", name: "channel_vacated", time_ms: 1, channel: "c" }], Date.now());
 * console.assert(headers["X-Pusher-Key"] === "k");
 * ```
 */
export function pusherSink(options: PusherSinkOptions): WebhookSink {
  const { url, key, secret, headers = {}, ownEvent = () => true } = options;
  const hidden = new Set(["id", "time_ms", ...(options.privateFields ?? ["app"])]);
  const names = new Set(options.events);
  return {
    id: sinkId(`pusher.${key.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40)}`, url),
    url,
    accepts: (event) => names.has(event.name) && ownEvent(event),
    encode(events, nowMs) {
      const wire = events.map((event) =>
        Object.fromEntries(Object.entries(event).filter(([k]) => !hidden.has(k)))
      );
      const body = JSON.stringify({ time_ms: nowMs, events: wire });
      return {
        body,
        headers: { ...headers, "X-Pusher-Key": key, "X-Pusher-Signature": hmacHex(secret, body) },
      };
    },
    maxBatch: 50,
    maxWaitMs: 1000,
    retry: { initialMs: 1000, maxMs: 60_000, forMs: 600_000, ...options.retry },
  };
}
