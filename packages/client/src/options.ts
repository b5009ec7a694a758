/**
 * What `connect` accepts: credentials, endpoints, timers and the
 * queue bound, with their defaults applied and checked in one place.
 *
 * @module
 */
import type { ReconnectOptions } from "./backoff.ts";
import type { WebSocketConstructor } from "./transport.ts";

/** A token, or a function returning a fresh one. */
export type TokenSource = string | (() => string | Promise<string>);

/**
 * Where to connect: one URL, a list tried in turn (the next one after each
 * failed or lost connection, so clients move to another node when theirs
 * goes away), or a function asked before every attempt.
 */
export type UrlSource = string | URL | readonly (string | URL)[] | (() => string | URL);

/** Options for {@linkcode connect}. Give at most one of `token` and `ticket`. */
export interface ConnectOptions {
  /**
   * Bearer token, sent as the WebSocket subprotocol offer `["bearer", token]`
   * because browsers cannot set an `Authorization` header on a WebSocket.
   *
   * A function is called for every connection attempt and whenever the
   * server says the token is `expiring`; it may cache. A string cannot be
   * refreshed: the server closes with 4401 when it expires, and the client
   * stops there (as it does after 4403). With a function the client fetches
   * a new token and reconnects instead.
   */
  token?: TokenSource;
  /**
   * Returns a one-time ticket (e.g. from an authenticated HTTP endpoint),
   * sent as `?ticket=` on the URL. Called for every connection attempt, since
   * a ticket works once. Tickets cannot refresh a live connection: on
   * `expiring` the client only emits the event, and after the server's 4401
   * it reconnects with a new ticket, rejoining its rooms.
   */
  ticket?: () => string | Promise<string>;
  /**
   * Back-off settings, or `false` to never reconnect.
   * @default {{}}
   */
  reconnect?: ReconnectOptions | false;
  /**
   * Interval between app-level pings once connected; 0 disables them.
   * @default {25000}
   */
  pingIntervalMs?: number;
  /**
   * How long to wait for a `pong` before treating the connection as dead,
   * closing it with {@linkcode ClientCloseCode.DeadConnection} and reconnecting.
   * @default {10000}
   */
  pongTimeoutMs?: number;
  /**
   * How long a connection attempt may take, from creating the socket to the
   * server's `welcome`.
   * @default {10000}
   */
  connectTimeoutMs?: number;
  /**
   * Most requests (`join`, `leave`, `publish`) held while disconnected.
   * Further requests reject at once with code `queue_full`: rejecting the
   * newest, rather than dropping the oldest, keeps the promise of every request
   * already accepted and the order in which they reach the server.
   * @default {100}
   */
  maxQueue?: number;
  /**
   * How long any request may wait for its reply, time spent queued included;
   * it then rejects with code `timeout`.
   * @default {10000}
   */
  requestTimeoutMs?: number;
  /**
   * Ask the server to pack several messages per frame (`?batch=1`): the
   * messages of one server turn reach this client in one frame, the same for
   * every member of a room, which costs the server a fraction of one frame
   * per message. `false` asks for one message per frame. The client splits
   * every frame on `"\n"` either way.
   * @default {true}
   */
  batch?: boolean;
  /**
   * WebSocket implementation.
   * @default {globalThis.WebSocket}
   */
  WebSocket?: WebSocketConstructor;
}

/** {@linkcode ConnectOptions} with every default applied and every value checked. */
export interface Settings {
  /** See {@linkcode ConnectOptions.token}. */
  readonly token: TokenSource | undefined;
  /** See {@linkcode ConnectOptions.ticket}. */
  readonly ticket: (() => string | Promise<string>) | undefined;
  /** See {@linkcode ConnectOptions.reconnect}. */
  readonly reconnect: ReconnectOptions | false;
  /** See {@linkcode ConnectOptions.pingIntervalMs}. */
  readonly pingIntervalMs: number;
  /** See {@linkcode ConnectOptions.pongTimeoutMs}. */
  readonly pongTimeoutMs: number;
  /** See {@linkcode ConnectOptions.connectTimeoutMs}. */
  readonly connectTimeoutMs: number;
  /** See {@linkcode ConnectOptions.maxQueue}. */
  readonly maxQueue: number;
  /** See {@linkcode ConnectOptions.requestTimeoutMs}. */
  readonly requestTimeoutMs: number;
  /** See {@linkcode ConnectOptions.batch}. */
  readonly batch: boolean;
  /** See {@linkcode ConnectOptions.WebSocket}. */
  readonly WebSocket: WebSocketConstructor;
}

/**
 * Applies the defaults of {@linkcode ConnectOptions} and checks the values.
 *
 * @throws {TypeError} for both `token` and `ticket`, or no WebSocket implementation
 * @throws {RangeError} for a negative, zero or non-finite duration, or a bad `maxQueue`
 */
export function settingsFrom(options: ConnectOptions): Settings {
  const {
    token,
    ticket,
    reconnect = {},
    pingIntervalMs = 25_000,
    pongTimeoutMs = 10_000,
    connectTimeoutMs = 10_000,
    maxQueue = 100,
    requestTimeoutMs = 10_000,
    batch = true,
    WebSocket = globalThis.WebSocket as WebSocketConstructor | undefined,
  } = options;
  if (token !== undefined && ticket !== undefined) {
    throw new TypeError("Cannot connect: give either token or ticket, current value has both");
  }
  if (WebSocket === undefined) {
    throw new TypeError(
      "Cannot connect: no WebSocket implementation, current value is undefined",
    );
  }
  assertDuration("pingIntervalMs", pingIntervalMs, true);
  assertDuration("pongTimeoutMs", pongTimeoutMs, false);
  assertDuration("connectTimeoutMs", connectTimeoutMs, false);
  assertDuration("requestTimeoutMs", requestTimeoutMs, false);
  if (!Number.isInteger(maxQueue) || maxQueue < 0) {
    throw new RangeError(
      `Cannot connect: maxQueue must be a non-negative integer, current value is ${maxQueue}`,
    );
  }
  return {
    token,
    ticket,
    reconnect,
    pingIntervalMs,
    pongTimeoutMs,
    connectTimeoutMs,
    maxQueue,
    requestTimeoutMs,
    batch,
    WebSocket,
  };
}

function assertDuration(name: string, value: number, allowZero: boolean): void {
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new RangeError(
      `Cannot connect: ${name} must be a positive number, current value is ${value}`,
    );
  }
}
