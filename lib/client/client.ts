/**
 * The browser client for the realtime server: one reconnecting WebSocket per
 * {@linkcode connect} call, with room handlers, request/reply correlation,
 * an offline queue, app-level liveness pings and token refresh.
 *
 * The client imports only its own modules (`room.ts`: one joined room's
 * state and recovery) and uses no Deno-only API. `deno task build:client`
 * bundles it into `web/client/client.js` (committed; a test fails when it is
 * stale), which the server serves as `/client.js`. The `import type` lines
 * below disappear in that step; they keep the client's view of the wire
 * protocol tied to the server's single definition of it.
 *
 * @example Connect, join, publish
 * ```ts ignore
 * import { connect } from "/client.js";
 *
 * const rt = connect("wss://rt.example.com/ws", { token: () => getToken() });
 * rt.on("close", (code, reason) => console.log("closed", code, reason));
 * await rt.join("chat:lobby", (payload, message) => console.log(message.from, payload));
 * await rt.publish("chat:lobby", { text: "hi" });
 * ```
 *
 * @module
 */
import type { CloseCode, ErrorCode } from "../codes.ts";
import type { JsonValue, ServerMessage } from "../protocol.ts";
import { JoinedRoom, type RejoinInfo, type RoomPosition } from "./room.ts";
import {
  type PresenceChange,
  type PresenceMember,
  type PresenceSnapshot,
  RoomPresence,
} from "./presence.ts";

export type {
  JsonValue,
  PresenceChange,
  PresenceMember,
  PresenceSnapshot,
  RejoinInfo,
  RoomPosition,
};

/** Where the client is in its connection lifecycle; see {@linkcode RealtimeClient.state}. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/**
 * Codes a {@linkcode RealtimeError} can carry: every server error code plus
 * the ones the client raises itself.
 *
 * - `timeout`: no reply within `requestTimeoutMs` (queue time included).
 * - `queue_full`: the request was made while disconnected and `maxQueue`
 *   requests were already waiting.
 * - `disconnected`: a `publish` to a room without history was on the wire
 *   when the connection dropped; it may or may not have been delivered, so it
 *   is not resent. (In a history room it is resent with the same `id` after
 *   the rejoin, and the server delivers it at most once.)
 * - `closed`: {@linkcode RealtimeClient.close} was called, or the client gave
 *   up reconnecting (4401/4403 without a token function, or a server 1000).
 * - `handshake_failed`: several connection attempts in a row ended before the
 *   server's `welcome`; browsers cannot see why, but it usually means the
 *   credentials were refused. The client keeps retrying.
 * - `token_failed`: the `token` or `ticket` function threw or rejected.
 * - `bad_frame`: the server sent something that is not a JSON object with a `type`.
 */
export type ClientErrorCode =
  | ErrorCode
  | "timeout"
  | "queue_full"
  | "disconnected"
  | "closed"
  | "handshake_failed"
  | "token_failed"
  | "bad_frame";

/** Extra fields of a {@linkcode RealtimeError}. */
export interface RealtimeErrorOptions {
  /** Room the failed request or server error was about. */
  room?: string | undefined;
  /** From `rate_limited`: how long to wait before publishing again. */
  retryAfterMs?: number | undefined;
  /** The underlying failure, e.g. what a token function threw. */
  cause?: unknown;
}

/**
 * Every error the client produces, whether it rejects a request or is passed
 * to `"error"` listeners. Switch on `code`, not on `message`.
 *
 * @example
 * ```ts ignore
 * try {
 *   await rt.join("admin", () => {});
 * } catch (err) {
 *   if (err instanceof RealtimeError && err.code === "forbidden") showNoAccess();
 *   else throw err;
 * }
 * ```
 */
export class RealtimeError extends Error {
  /** The server's error code, or one of the client's own; see {@linkcode ClientErrorCode}. */
  readonly code: ClientErrorCode;
  /** Room the error is about, when there is one. */
  readonly room: string | undefined;
  /** For `rate_limited`: milliseconds to wait before publishing again. */
  readonly retryAfterMs: number | undefined;

  /**
   * @param code what went wrong, as a stable machine-readable code
   * @param message human-readable detail
   * @param options room, retryAfterMs and cause
   */
  constructor(code: ClientErrorCode, message: string, options: RealtimeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RealtimeError";
    this.code = code;
    this.room = options.room;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** A room message as delivered to a {@linkcode RoomHandler}. */
export interface RoomMessage<T = JsonValue> {
  /** Always `"message"`. */
  type: "message";
  /** The room it was published to. */
  room: string;
  /** What the publisher passed to `publish`. */
  payload: T;
  /** The publisher's user id; your own messages come back to you too. */
  from: string;
  /** Server time of publication, in milliseconds since the epoch. */
  ts: number;
  /** History rooms: the message's place in the room's stream (1, 2, 3, … per epoch). */
  offset?: number;
  /** History rooms: the stream the offset counts in. */
  epoch?: string;
}

/** Options for {@linkcode RealtimeClient.join}. */
export interface JoinOptions {
  /**
   * In a history room, rejoin after a reconnect with the last offset seen,
   * so that the server replays exactly what was missed.
   * @default {true}
   */
  recover?: boolean;
}

/** Options for {@linkcode RealtimeClient.history}. */
export interface HistoryOptions {
  /** Most messages, 1–1000. @default {100} */
  limit?: number | undefined;
  /** Only messages older than this offset (page backwards with the first offset of a page). */
  before?: number | undefined;
}

/** A page of a history room's past; see {@linkcode RealtimeClient.history}. */
export interface HistoryPage<T = JsonValue> {
  /** Oldest first, exactly as members received them. */
  messages: RoomMessage<T>[];
  /** The room's current position. */
  offset: number;
  /** The stream's epoch. */
  epoch: string;
  /** Whether older messages are still kept. */
  more: boolean;
}

/**
 * Receives a joined room's messages. The payload type is the caller's claim,
 * not checked at runtime: validate it if other users can publish to the room.
 */
export type RoomHandler<T = JsonValue> = (payload: T, message: RoomMessage<T>) => void;

/** What the server said in its `welcome`; passed to `"open"` listeners. */
export interface WelcomeInfo {
  /** This connection's id on the server (new on every reconnect). */
  connectionId: string;
  /** The authenticated user. */
  userId: string;
  /** Token expiry in seconds since the epoch, or `null` if it never expires. */
  expiresAt: number | null;
  /** The server instance that accepted the connection. */
  instanceId: string;
  /** True when this is not the first connection of this client. */
  reconnected: boolean;
}

/** Why a room was left without the app calling `leave`; see the `"left"` event. */
export type LeftReason = "revoked" | "rejoin_failed";

/** Listener signatures, by event name; see {@linkcode RealtimeClient.on}. */
export interface RealtimeEvents {
  /** Connected, welcomed, rooms rejoined and queued requests sent. */
  open: (info: WelcomeInfo) => void;
  /**
   * A socket closed: the server's close code and reason, 1006 for an abnormal
   * drop, or {@linkcode ClientCloseCode} values when the client dropped it.
   * Emitted on every disconnect, including those followed by a reconnect.
   */
  close: (code: number, reason: string) => void;
  /** Something failed that no request promise can report. */
  error: (error: RealtimeError) => void;
  /** The server warned that the token expires at `expiresAt` (seconds since epoch). */
  expiring: (expiresAt: number) => void;
  /** The server accepted a refreshed token; new expiry in seconds since epoch. */
  refreshed: (expiresAt: number | null) => void;
  /** A reconnect is scheduled: attempt number (from 1) and the delay before it. */
  reconnecting: (attempt: number, delayMs: number) => void;
  /** The client is no longer in `room`, and its handler was dropped. */
  left: (room: string, reason: LeftReason) => void;
  /**
   * A room was rejoined after a reconnect. In a history room joined with
   * recovery, `recovered: true` means the `missed` messages were replayed to
   * the handler (before any live one); `recovered: false` means some may be
   * lost: refetch the room's state (for example with `history`).
   */
  rejoin: (room: string, info: RejoinInfo) => void;
  /**
   * Who arrived and left in a joined presence room. The first state after a
   * join reports every member as a join; a state after a rejoin reports the
   * difference from what was known. Read the whole list with `presence(room)`.
   */
  presence: (room: string, change: PresenceChange) => void;
}

/** Name of a {@linkcode RealtimeEvents} event. */
export type RealtimeEventName = keyof RealtimeEvents;

/**
 * Close codes the client itself reports to `"close"` listeners (and sends to
 * the server) when it gives up on a socket that is still technically open.
 */
export const ClientCloseCode = {
  /** No `pong` within `pongTimeoutMs`, or no `welcome` within `connectTimeoutMs`. */
  DeadConnection: 4000,
} as const;

/** The subset of the DOM `WebSocket` the client uses, so tests can inject a fake. */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** Send one text frame. */
  send(data: string): void;
  /** Start the closing handshake. */
  close(code?: number, reason?: string): void;
  /** Called once the handshake succeeded. */
  onopen: ((event: Event) => void) | null;
  /** Called for every frame. */
  onmessage: ((event: MessageEvent) => void) | null;
  /** Called once, when the socket is closed for whatever reason. */
  onclose: ((event: CloseEvent) => void) | null;
  /** Called on failure, always followed by `onclose`. */
  onerror: ((event: Event) => void) | null;
}

/** A constructor compatible with the DOM `WebSocket`. */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
) => WebSocketLike;

/** Reconnect back-off; see {@linkcode backoffDelay}. */
export interface ReconnectOptions {
  /**
   * Ceiling of the first retry's delay.
   * @default {500}
   */
  initialDelayMs?: number;
  /**
   * Largest delay ceiling, however many attempts failed.
   * @default {30000}
   */
  maxDelayMs?: number;
  /**
   * Growth of the delay ceiling per failed attempt.
   * @default {2}
   */
  factor?: number;
  /**
   * Full jitter: wait a uniformly random time between 0 and the ceiling, so
   * that clients dropped together by a restart do not come back together.
   * @default {true}
   */
  jitter?: boolean;
  /**
   * Consecutive attempts failing before `welcome` after which an `"error"`
   * with code `handshake_failed` is emitted (once per streak). A browser sees
   * a refused handshake (HTTP 401) only as close code 1006, so a streak is the
   * only hint that the credentials are being refused.
   * @default {3}
   */
  handshakeFailureLimit?: number;
}

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
   * Ask the server to pack several messages per frame (`?batch=1`). The client
   * splits every frame on `"\n"` either way.
   * @default {false}
   */
  batch?: boolean;
  /**
   * WebSocket implementation.
   * @default {globalThis.WebSocket}
   */
  WebSocket?: WebSocketConstructor;
}

/**
 * The delay before reconnect attempt `attempt` (1-based): exponential growth
 * from `initialDelayMs` by `factor`, capped at `maxDelayMs`, then, with
 * jitter, a uniformly random point between 0 and that ceiling ("full jitter").
 *
 * @example
 * ```ts
 * import { backoffDelay } from "./client.ts";
 * const ceiling = backoffDelay(4, { initialDelayMs: 100, jitter: false }); // 800
 * ```
 *
 * @param attempt how many attempts have failed in a row, from 1
 * @param options back-off settings
 * @param random uniform source in [0, 1)
 * @returns milliseconds to wait
 */
export function backoffDelay(
  attempt: number,
  options: ReconnectOptions = {},
  random: () => number = Math.random,
): number {
  const { initialDelayMs = 500, maxDelayMs = 30_000, factor = 2, jitter = true } = options;
  const exponent = Math.max(0, attempt - 1);
  const ceiling = Math.min(maxDelayMs, initialDelayMs * factor ** exponent);
  return jitter ? Math.floor(random() * ceiling) : ceiling;
}

/**
 * Opens a reconnecting connection to the realtime server. Never throws for
 * network trouble: it starts connecting and reports through events and the
 * promises of requests.
 *
 * @example
 * ```ts ignore
 * import { connect } from "/client.js";
 *
 * const rt = connect("/ws", { ticket: () => fetch("/ticket").then((r) => r.text()) });
 * const off = rt.on("reconnecting", (attempt, delayMs) => console.log(attempt, delayMs));
 * await rt.join("doc:42", (payload) => apply(payload));
 * off();
 * ```
 *
 * @param url `ws:`/`wss:` URL of the WebSocket endpoint (`http(s):` and paths
 * relative to the page are accepted too), a list of them tried in turn, or a
 * function returning one before each attempt
 * @param options credentials, timers, queue bound
 * @returns the client, already connecting
 */
export function connect(url: UrlSource, options: ConnectOptions = {}): RealtimeClient {
  return new RealtimeClient(url, options);
}

type RequestKind = "join" | "leave" | "message" | "refresh" | "rejoin" | "history";

type ClientFrame =
  | { type: "join"; room: string; id: string; since?: RoomPosition }
  | { type: "history"; room: string; id: string; limit?: number; before?: number }
  | { type: "leave"; room: string; id: string }
  | { type: "message"; room: string; payload: JsonValue; id: string }
  | { type: "refresh"; token: string; id: string }
  | { type: "ping"; id: string };

type Timer = ReturnType<typeof setTimeout>;

/** A request from creation until its reply, timeout or abandonment. */
interface PendingRequest {
  readonly id: string;
  readonly kind: RequestKind;
  readonly frame: ClientFrame;
  /** Runs synchronously on success, before later frames of the same batch are handled. */
  readonly onReply: (reply: ServerMessage) => void;
  readonly reject: (error: Error) => void;
  timer: Timer | undefined;
  /** A publish answered `unavailable`, waiting to be sent again with the same id. */
  retry?: Timer | undefined;
}

type Listener = (...args: never[]) => void;

const ROOM_PATTERN = /^[A-Za-z0-9_\-.:@/]{1,128}$/;
/** `WebSocket.readyState` values; the constants are not on every implementation. */
const OPEN = 1;
const CLOSED = 3;
/**
 * Close codes the reconnect decision turns on. Literals, because this file may
 * not import values; the annotations make the compiler hold them equal to
 * `CloseCode` in `../codes.ts`.
 */
const CLOSE_NORMAL: typeof CloseCode.Normal = 1000;
const CLOSE_TOKEN_EXPIRED: typeof CloseCode.TokenExpired = 4401;
const CLOSE_FORBIDDEN: typeof CloseCode.Forbidden = 4403;
/** Bounds on the wait before a publish answered `unavailable` is sent again. */
const MIN_RETRY_MS = 100;
const MAX_RETRY_MS = 5_000;

/**
 * Request ids start with a random prefix per client: the server deduplicates
 * history-room publishes by (user, room, id), so two tabs of one user must
 * never produce the same id. `getRandomValues` works outside secure contexts too.
 */
function randomPrefix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => (b % 36).toString(36)).join("") + "-";
}

function resolveUrl(source: string | URL): URL {
  const url = new URL(source, pageHref());
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  return url;
}
/** How long `close()` waits for sockets to finish closing before resolving anyway. */
const CLOSE_GRACE_MS = 3_000;

function assertRoom(operation: string, room: string): void {
  if (typeof room !== "string" || !ROOM_PATTERN.test(room)) {
    throw new TypeError(
      `Cannot ${operation}: room must be 1-128 characters of A-Z a-z 0-9 _ - . : @ /, current value is ${
        JSON.stringify(room)
      }`,
    );
  }
}

function assertDuration(name: string, value: number, allowZero: boolean): void {
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new RangeError(
      `Cannot connect: ${name} must be a positive number, current value is ${value}`,
    );
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function pageHref(): string | undefined {
  // `location` exists in browsers and, without --location, is undefined in Deno.
  return (globalThis as { location?: { href?: string } | undefined }).location?.href;
}
/**
 * A reconnecting connection; created by {@linkcode connect}.
 *
 * Rooms survive reconnects: after every new `welcome` the client rejoins each
 * joined room (handlers are kept), then sends the requests queued while it was
 * disconnected, then emits `"open"`. Requests in flight when the connection
 * drops are handled by kind: `join` is resent, `leave` counts as done (the new
 * connection is not in the room), `publish` rejects with `disconnected`
 * because it may already have been delivered.
 *
 * When to reconnect, by close code: never after the server's 1000 (it is
 * done with us) or `close()`; after 4401/4403 only with a token function or a
 * ticket, which can supply a fresh credential; after anything else (1001
 * going away, 1006 dropped or refused handshake, 1008 slow consumer, 1009,
 * 1011, 4429 flooding, a dead connection) with capped exponential back-off
 * and full jitter, see {@linkcode backoffDelay}.
 */
export class RealtimeClient {
  readonly #urls: readonly URL[] | (() => string | URL);
  #urlIndex = 0;
  readonly #batch: boolean;
  readonly #idPrefix = randomPrefix();
  readonly #token: TokenSource | undefined;
  readonly #ticket: (() => string | Promise<string>) | undefined;
  readonly #reconnect: ReconnectOptions | false;
  readonly #pingIntervalMs: number;
  readonly #pongTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #maxQueue: number;
  readonly #requestTimeoutMs: number;
  readonly #WebSocket: WebSocketConstructor;

  #state: ConnectionState = "connecting";
  #socket: WebSocketLike | undefined;
  /** Whether the current socket got its `welcome` (it may still be rejoining). */
  #socketWelcomed = false;
  #welcome: WelcomeInfo | undefined;
  #everWelcomed = false;
  /** Bumped for every connection attempt, so a stale async step can tell it is stale. */
  #generation = 0;
  #attempt = 0;
  #failuresBeforeWelcome = 0;
  #nextId = 0;

  readonly #rooms = new Map<string, JoinedRoom<RoomHandler<never>>>();
  /** Presence rooms' member maps, for joined rooms only. */
  readonly #presence = new Map<string, RoomPresence>();
  readonly #queue: PendingRequest[] = [];
  readonly #inflight = new Map<string, PendingRequest>();
  #rejoinsLeft = 0;

  #connectTimer: Timer | undefined;
  #reconnectTimer: Timer | undefined;
  #pingTimer: Timer | undefined;
  #pingId: string | undefined;
  #refreshing = false;

  readonly #listeners = new Map<RealtimeEventName, Set<Listener>>();
  /** Sockets told to close whose close event has not arrived yet. */
  readonly #draining = new Set<WebSocketLike>();
  readonly #drainWaiters = new Set<() => void>();

  /**
   * Prefer {@linkcode connect}.
   *
   * @param url WebSocket endpoint
   * @param options see {@linkcode ConnectOptions}
   */
  constructor(url: UrlSource, options: ConnectOptions = {}) {
    const {
      token,
      ticket,
      reconnect = {},
      pingIntervalMs = 25_000,
      pongTimeoutMs = 10_000,
      connectTimeoutMs = 10_000,
      maxQueue = 100,
      requestTimeoutMs = 10_000,
      batch = false,
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
    if (typeof url === "function") {
      this.#urls = url;
    } else {
      const list = typeof url === "string" || url instanceof URL ? [url] : url;
      if (list.length === 0) {
        throw new TypeError("Cannot connect: the URL list is empty, current value is []");
      }
      // Resolved now, so that a malformed URL throws here rather than on every attempt.
      this.#urls = list.map(resolveUrl);
    }
    this.#batch = batch;
    this.#token = token;
    this.#ticket = ticket;
    this.#reconnect = reconnect;
    this.#pingIntervalMs = pingIntervalMs;
    this.#pongTimeoutMs = pongTimeoutMs;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#maxQueue = maxQueue;
    this.#requestTimeoutMs = requestTimeoutMs;
    this.#WebSocket = WebSocket;
    void this.#open();
  }

  /** Where the connection is: `connecting` (first attempt), `open`, `reconnecting`, `closed`. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The user of the latest connection, from its `welcome`. */
  get userId(): string | undefined {
    return this.#welcome?.userId;
  }

  /** The latest connection's id, from its `welcome`. */
  get connectionId(): string | undefined {
    return this.#welcome?.connectionId;
  }

  /** The server instance of the latest connection, from its `welcome`. */
  get instanceId(): string | undefined {
    return this.#welcome?.instanceId;
  }

  /** Token expiry in seconds since the epoch (`null`: never), updated on refresh. */
  get expiresAt(): number | null | undefined {
    return this.#welcome?.expiresAt;
  }

  /** Rooms currently joined; they are rejoined after every reconnect. */
  get rooms(): string[] {
    return [...this.#rooms.keys()];
  }

  /** The last position seen in a joined history room (what a rejoin recovers from). */
  position(room: string): RoomPosition | undefined {
    return this.#rooms.get(room)?.position;
  }

  /**
   * The members of a joined presence room, kept up to date from the server's
   * frames (no round trip); `undefined` before the room's first state, and
   * for rooms not joined or without presence.
   *
   * @example
   * ```ts ignore
   * await rt.join("chat:lobby", onMessage);
   * rt.on("presence", (room, { joins, leaves, count }) => {
   *   render(rt.presence(room)?.members ?? [], count);
   * });
   * ```
   */
  presence(room: string): PresenceSnapshot | undefined {
    return this.#presence.get(room)?.snapshot();
  }

  /**
   * Listens for a lifecycle event.
   *
   * @example
   * ```ts ignore
   * const off = rt.on("close", (code, reason) => console.log(code, reason));
   * off();
   * ```
   *
   * @param event event name; see {@linkcode RealtimeEvents}
   * @param listener called with the event's arguments; exceptions are reported, not propagated
   * @returns a function that removes the listener
   */
  on<K extends RealtimeEventName>(event: K, listener: RealtimeEvents[K]): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) this.#listeners.set(event, set = new Set());
    const stored = listener as Listener;
    set.add(stored);
    return () => {
      set.delete(stored);
    };
  }

  /**
   * Joins a room. Resolves once the server answers `joined`; from then on,
   * `handler` receives the room's messages, across reconnects, until `leave`.
   * Joining a room already joined only replaces its handler.
   *
   * Rejects with a {@linkcode RealtimeError} carrying the server's code
   * (`forbidden`, `too_many_rooms`, …) or `timeout`, `queue_full`, `closed`;
   * rejects with a `TypeError` for a malformed room name.
   *
   * @example
   * ```ts ignore
   * await rt.join<{ text: string }>("chat:lobby", (payload, message) => {
   *   console.log(`${message.from}: ${payload.text}`);
   * });
   * ```
   *
   * In a history room, messages carry `offset` and `epoch`, and by default
   * every rejoin after a reconnect asks for what was missed: replayed messages
   * reach `handler` like live ones, in order, never twice; see the `"rejoin"`
   * event.
   *
   * @param room room name: 1–128 of `A-Z a-z 0-9 _ - . : @ /`
   * @param handler receives each message published to the room
   * @param options recovery on rejoin
   * @returns resolves on `joined`
   */
  join<T = JsonValue>(
    room: string,
    handler: RoomHandler<T>,
    options: JoinOptions = {},
  ): Promise<void> {
    const { recover = true } = options;
    try {
      assertRoom("join room", room);
    } catch (err) {
      return Promise.reject(err);
    }
    const existing = this.#rooms.get(room);
    if (existing !== undefined) {
      existing.handler = handler as RoomHandler<never>;
      return Promise.resolve();
    }
    return this.#request({ type: "join", room, id: this.#newId() }, "join", (reply) => {
      const joined = new JoinedRoom(handler as RoomHandler<never>, recover);
      if (reply.type === "joined") joined.joined(reply);
      this.#rooms.set(room, joined);
    });
  }

  /**
   * Reads a history room's past: the newest `limit` messages (before offset
   * `before`), oldest first. Needs read access to the room, not membership.
   * Rejects with `bad_request` for a room without history, `forbidden`,
   * `unavailable` (store down), or the client's own codes.
   *
   * @example Page backwards
   * ```ts ignore
   * let page = await rt.history("chat:lobby", { limit: 50 });
   * while (page.more) {
   *   page = await rt.history("chat:lobby", { limit: 50, before: page.messages[0].offset });
   * }
   * ```
   */
  history<T = JsonValue>(room: string, options: HistoryOptions = {}): Promise<HistoryPage<T>> {
    try {
      assertRoom("read history", room);
    } catch (err) {
      return Promise.reject(err);
    }
    const frame: ClientFrame = { type: "history", room, id: this.#newId() };
    if (options.limit !== undefined) frame.limit = options.limit;
    if (options.before !== undefined) frame.before = options.before;
    return this.#request(frame, "history", (reply) => {
      if (reply.type !== "history") {
        throw new RealtimeError("bad_frame", `Expected a history reply, got ${reply.type}`);
      }
      return {
        messages: reply.messages as RoomMessage<T>[],
        offset: reply.offset,
        epoch: reply.epoch,
        more: reply.more,
      };
    });
  }

  /**
   * Leaves a room. Its handler stops receiving messages immediately; the
   * promise resolves when the server answers `left` (a `not_joined` answer
   * counts as success). While disconnected it usually resolves at once, since
   * the next connection simply does not rejoin the room; a `join` still queued
   * for the room is followed by a queued `leave` instead.
   *
   * @param room a room name
   * @returns resolves once the server no longer has this connection in the room
   */
  leave(room: string): Promise<void> {
    try {
      assertRoom("leave room", room);
    } catch (err) {
      return Promise.reject(err);
    }
    const wasJoined = this.#rooms.delete(room);
    this.#presence.delete(room);
    if (this.#state === "connecting" || this.#state === "reconnecting") {
      // Only a queued join, or a rejoin already sent on a welcomed socket, needs
      // undoing on the server; otherwise the room was ours only locally.
      const joinQueued = this.#queue.some((r) => r.frame.type === "join" && r.frame.room === room);
      if (!joinQueued && !(wasJoined && this.#socketWelcomed)) return Promise.resolve();
    }
    return this.#request({ type: "leave", room, id: this.#newId() }, "leave", () => {});
  }

  /**
   * Publishes `payload` to a joined room. Resolves when the server answers
   * `ack`: the message was accepted for delivery, which includes delivery
   * back to this client's own handler.
   *
   * Rejects with the server's code (`not_joined`, `forbidden`,
   * `rate_limited` with `retryAfterMs`, `payload_too_large`, …) or `timeout`,
   * `queue_full`, `disconnected`, `closed`.
   *
   * In a history room a publish is idempotent: one cut off by a dropped
   * connection is sent again after the rejoin, and one answered `unavailable`
   * (the server's store is down) is sent again after `retryAfterMs`, both
   * with the same id, until `requestTimeoutMs`; the server delivers it once.
   *
   * @param room a joined room
   * @param payload any JSON value
   * @returns resolves on `ack`
   */
  publish(room: string, payload: JsonValue): Promise<void> {
    try {
      assertRoom("publish", room);
      if (payload === undefined) {
        throw new TypeError("Cannot publish: payload is required, current value is undefined");
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#request(
      { type: "message", room, payload, id: this.#newId() },
      "message",
      () => {},
    );
  }

  /**
   * Closes the connection for good: no reconnect; queued and pending requests
   * reject with code `closed`; room handlers are dropped. Emits `"close"` once
   * the socket has closed. Safe to call more than once.
   *
   * @returns resolves once the socket has finished closing, or after a few
   * seconds if the network never confirms it
   */
  close(): Promise<void> {
    if (this.#state !== "closed") {
      const socket = this.#socket;
      this.#finish();
      if (socket !== undefined) this.#abandon(socket, 1000, "client closed", true);
    }
    return this.#whenDrained();
  }

  // ---- connection lifecycle ----

  async #open(): Promise<void> {
    const generation = ++this.#generation;
    let url: URL;
    try {
      url = this.#nextUrl();
    } catch (err) {
      this.#emitError(new RealtimeError("bad_request", "The URL function failed", { cause: err }));
      this.#scheduleReconnect(false);
      return;
    }
    let protocols: string[] | undefined;
    try {
      if (this.#ticket !== undefined) {
        url.searchParams.set("ticket", await this.#ticket());
      } else if (this.#token !== undefined) {
        const token = typeof this.#token === "function" ? await this.#token() : this.#token;
        protocols = ["bearer", token];
      }
    } catch (err) {
      if (generation !== this.#generation) return;
      this.#emitError(
        new RealtimeError("token_failed", "Getting a token or ticket failed", { cause: err }),
      );
      this.#scheduleReconnect(false);
      return;
    }
    if (generation !== this.#generation) return;

    let socket: WebSocketLike;
    try {
      socket = protocols === undefined
        ? new this.#WebSocket(url.href)
        : new this.#WebSocket(url.href, protocols);
    } catch (err) {
      // E.g. a token with characters a subprotocol cannot carry.
      this.#emitError(
        new RealtimeError("bad_request", "Could not create the WebSocket", { cause: err }),
      );
      this.#scheduleReconnect(false);
      return;
    }
    this.#socket = socket;
    this.#socketWelcomed = false;
    socket.onmessage = (event) => {
      if (typeof event.data === "string") this.#onFrame(socket, event.data);
    };
    socket.onclose = (event) => {
      if (socket !== this.#socket) return;
      this.#socket = undefined;
      this.#disconnected(event.code, event.reason);
    };
    // The close event that always follows carries what little the browser tells us.
    socket.onerror = () => {};
    this.#connectTimer = setTimeout(() => {
      this.#connectTimer = undefined;
      this.#drop(socket, "no welcome within connectTimeoutMs");
    }, this.#connectTimeoutMs);
  }

  /** The URL of the next attempt: the function's answer, or the list's next entry. */
  #nextUrl(): URL {
    const url = typeof this.#urls === "function"
      ? resolveUrl(this.#urls())
      : new URL(this.#urls[this.#urlIndex++ % this.#urls.length]!);
    if (this.#batch) url.searchParams.set("batch", "1");
    return url;
  }

  /** Gives up on a socket that is open but not working, and reconnects. */
  #drop(socket: WebSocketLike, reason: string): void {
    if (socket !== this.#socket) return;
    this.#socket = undefined;
    this.#abandon(socket, ClientCloseCode.DeadConnection, reason, false);
    this.#disconnected(ClientCloseCode.DeadConnection, reason);
  }

  /**
   * Closes a socket without waiting for it: a dead peer may never finish the
   * closing handshake. Its close event only settles `close()`'s promise and,
   * with `report`, is emitted as the final `"close"`.
   */
  #abandon(socket: WebSocketLike, code: number, reason: string, report: boolean): void {
    socket.onmessage = null;
    socket.onerror = null;
    if (socket.readyState === CLOSED) {
      socket.onclose = null;
      if (report) this.#emit("close", code, reason);
      return;
    }
    this.#draining.add(socket);
    socket.onclose = (event) => {
      socket.onclose = null;
      this.#draining.delete(socket);
      if (report) this.#emit("close", event.code, event.reason);
      if (this.#draining.size > 0) return;
      for (const waiter of [...this.#drainWaiters]) waiter();
    };
    try {
      socket.close(code, reason);
    } catch {
      // Already closing: the close event still comes.
    }
  }

  #whenDrained(): Promise<void> {
    if (this.#draining.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = () => {
        clearTimeout(grace);
        this.#drainWaiters.delete(waiter);
        resolve();
      };
      const grace = setTimeout(waiter, CLOSE_GRACE_MS);
      this.#drainWaiters.add(waiter);
    });
  }

  /** The current socket is gone: settle its requests, then reconnect or stop. */
  #disconnected(code: number, reason: string): void {
    const welcomed = this.#socketWelcomed;
    this.#socketWelcomed = false;
    this.#stopConnectionTimers();
    this.#rejoinsLeft = 0;
    this.#refreshing = false;
    const requeue: PendingRequest[] = [];
    for (const request of [...this.#inflight.values()]) {
      const frame = request.frame;
      if (request.kind === "join") {
        requeue.push(request);
        this.#inflight.delete(request.id);
      } else if (frame.type === "leave") {
        // The next connection will not rejoin the room, which is what was asked.
        this.#succeed(request, { type: "left", room: frame.room });
      } else if (frame.type === "message" && this.#rooms.get(frame.room)?.position !== undefined) {
        // A history room deduplicates by id: sending it again is safe.
        this.#inflight.delete(request.id);
        if (request.retry !== undefined) clearTimeout(request.retry);
        request.retry = undefined;
        requeue.push(request);
      } else if (frame.type === "message") {
        const message = `Connection lost before the server acknowledged the message (${code})`;
        this.#fail(request, new RealtimeError("disconnected", message, { room: frame.room }));
      } else {
        // Rejoins and refreshes belong to the connection and die with it.
        this.#settle(request);
      }
    }
    // They went out before anything still queued, so they go first again.
    this.#queue.unshift(...requeue);

    this.#emit("close", code, reason);
    if (this.#state === "closed") return; // a listener called close()
    if (!this.#mayReconnectAfter(code)) {
      this.#finish();
      return;
    }
    this.#scheduleReconnect(welcomed);
  }

  #mayReconnectAfter(code: number): boolean {
    if (this.#reconnect === false) return false;
    // A fresh token or ticket can fix an expired or refused one; a fixed string cannot.
    const refreshable = typeof this.#token === "function" || this.#ticket !== undefined;
    if (code === CLOSE_TOKEN_EXPIRED || code === CLOSE_FORBIDDEN) return refreshable;
    // The server closing normally means it is done with us; going away (1001) is not that.
    return code !== CLOSE_NORMAL;
  }

  #scheduleReconnect(welcomed: boolean): void {
    if (this.#reconnect === false) {
      this.#finish();
      return;
    }
    if (!welcomed) {
      this.#failuresBeforeWelcome++;
      const limit = this.#reconnect.handshakeFailureLimit ?? 3;
      if (this.#failuresBeforeWelcome === limit) {
        this.#emitError(
          new RealtimeError(
            "handshake_failed",
            `${limit} connection attempts in a row failed before the server's welcome; ` +
              "the credentials may be refused",
          ),
        );
      }
    }
    if (this.#state === "closed") return;
    this.#state = "reconnecting";
    const attempt = ++this.#attempt;
    const delayMs = backoffDelay(attempt, this.#reconnect);
    this.#emit("reconnecting", attempt, delayMs);
    if (this.#state !== "reconnecting") return; // a listener called close()
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#open();
    }, delayMs);
  }

  /** Terminal state: nothing will be sent or retried again. */
  #finish(): void {
    this.#state = "closed";
    this.#generation++;
    this.#stopConnectionTimers();
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    for (const request of [...this.#queue, ...this.#inflight.values()]) {
      if (request.kind === "rejoin" || request.kind === "refresh") this.#settle(request);
      else this.#fail(request, new RealtimeError("closed", "The client is closed"));
    }
    this.#queue.length = 0;
    this.#inflight.clear();
    this.#rooms.clear();
    this.#presence.clear();
    this.#socket = undefined;
    this.#socketWelcomed = false;
  }

  #stopConnectionTimers(): void {
    if (this.#connectTimer !== undefined) clearTimeout(this.#connectTimer);
    if (this.#pingTimer !== undefined) clearTimeout(this.#pingTimer);
    this.#connectTimer = undefined;
    this.#pingTimer = undefined;
    this.#pingId = undefined;
  }

  // ---- incoming frames ----

  #onFrame(socket: WebSocketLike, data: string): void {
    // With `?batch=1` one frame carries several messages; without, the split is a no-op.
    for (const line of data.split("\n")) {
      // A handler may have closed the client, or a listener dropped the socket.
      if (socket !== this.#socket) return;
      if (line.trim() === "") continue;
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        message = undefined;
      }
      if (!isRecord(message) || typeof message.type !== "string") {
        this.#emitError(
          new RealtimeError("bad_frame", "The server sent a frame that is not a JSON message"),
        );
        continue;
      }
      // Trusting the server's shapes beyond `type` is the price of zero dependencies.
      this.#dispatch(socket, message as ServerMessage);
    }
  }

  #dispatch(socket: WebSocketLike, message: ServerMessage): void {
    switch (message.type) {
      case "welcome":
        this.#onWelcome(socket, message);
        return;
      case "message": {
        const joined = this.#rooms.get(message.room);
        if (joined === undefined || !joined.accept(message)) return;
        const handler = joined.handler as RoomHandler<unknown>;
        try {
          handler(message.payload, message as RoomMessage<unknown>);
        } catch (err) {
          report(err);
        }
        return;
      }
      case "joined":
      case "ack":
      case "refreshed":
      case "history":
        this.#reply(message, message.id);
        return;
      case "left":
        if (message.reason === "revoked" && this.#rooms.delete(message.room)) {
          this.#presence.delete(message.room);
          this.#emit("left", message.room, "revoked");
        }
        this.#reply(message, message.id);
        return;
      case "presence_state":
      case "presence_diff":
        this.#onPresence(message);
        return;
      case "pong":
        if (message.id === undefined || message.id === this.#pingId) this.#onPong(socket);
        return;
      case "expiring":
        this.#onExpiring(socket, message.expiresAt);
        return;
      case "error":
        this.#onError(message);
        return;
    }
  }

  #onPresence(
    message: Extract<ServerMessage, { type: "presence_state" | "presence_diff" }>,
  ): void {
    const room = message.room;
    if (!this.#rooms.has(room)) return;
    let view = this.#presence.get(room);
    if (view === undefined) {
      // Diffs are relative to a state: none is usable before the first.
      if (message.type !== "presence_state") return;
      this.#presence.set(room, view = new RoomPresence());
    }
    const change = message.type === "presence_state" ? view.state(message) : view.diff(message);
    this.#emit("presence", room, change);
  }

  #onWelcome(socket: WebSocketLike, message: Extract<ServerMessage, { type: "welcome" }>): void {
    if (this.#socketWelcomed) return;
    this.#socketWelcomed = true;
    if (this.#connectTimer !== undefined) clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#failuresBeforeWelcome = 0;
    this.#attempt = 0;
    this.#welcome = {
      connectionId: message.connectionId,
      userId: message.userId,
      expiresAt: message.expiresAt,
      instanceId: message.instanceId,
      reconnected: this.#everWelcomed,
    };
    this.#everWelcomed = true;
    this.#startPinging(socket);
    const rooms = [...this.#rooms.keys()];
    this.#rejoinsLeft = rooms.length;
    if (rooms.length === 0) this.#becomeOpen(socket);
    for (const room of rooms) {
      const frame: ClientFrame = { type: "join", room, id: this.#newId() };
      const since = this.#rooms.get(room)?.since();
      if (since !== undefined) frame.since = since;
      const request = this.#track(frame, "rejoin", (reply) => {
        const joined = this.#rooms.get(room);
        if (reply.type === "joined" && joined !== undefined) {
          this.#emit("rejoin", room, joined.joined(reply));
        }
        if (reply.type === "error") {
          this.#rooms.delete(room);
          this.#presence.delete(room);
          const error = new RealtimeError(reply.code, `Rejoining failed: ${reply.message}`, {
            room,
          });
          this.#emitError(error);
          this.#emit("left", room, "rejoin_failed");
        }
        this.#rejoined(socket);
      }, (err) => {
        // The room stays: the next reconnect tries again.
        if (err instanceof RealtimeError) this.#emitError(err);
        this.#rejoined(socket);
      });
      this.#send(socket, request);
    }
  }

  #rejoined(socket: WebSocketLike): void {
    if (socket !== this.#socket || this.#rejoinsLeft === 0) return;
    if (--this.#rejoinsLeft === 0) this.#becomeOpen(socket);
  }

  #becomeOpen(socket: WebSocketLike): void {
    const welcome = this.#welcome;
    if (socket !== this.#socket || welcome === undefined) return;
    this.#state = "open";
    for (const request of this.#queue.splice(0)) this.#send(socket, request);
    this.#emit("open", { ...welcome });
  }

  #reply(message: ServerMessage, id: string | undefined): void {
    const request = id === undefined ? undefined : this.#inflight.get(id);
    if (request !== undefined) this.#succeed(request, message);
  }

  #onError(message: Extract<ServerMessage, { type: "error" }>): void {
    const request = message.id === undefined ? undefined : this.#inflight.get(message.id);
    const error = new RealtimeError(message.code, message.message, {
      room: message.room,
      retryAfterMs: message.retryAfterMs,
    });
    if (request === undefined) {
      this.#emitError(error);
    } else if (
      request.frame.type === "message" && message.code === "unavailable" &&
      request.timer !== undefined
    ) {
      this.#retryLater(request, message.retryAfterMs);
    } else if (
      request.kind === "rejoin" || (request.kind === "leave" && message.code === "not_joined")
    ) {
      this.#succeed(request, message);
    } else {
      this.#fail(request, error);
    }
  }

  /** Sends a publish again, same id, once the server's store may be back. */
  #retryLater(request: PendingRequest, retryAfterMs: number | undefined): void {
    const wait = Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, retryAfterMs ?? 1000));
    if (request.retry !== undefined) clearTimeout(request.retry);
    request.retry = setTimeout(() => {
      request.retry = undefined;
      const socket = this.#socket;
      // Disconnected meanwhile: the request was requeued and goes out after the rejoin.
      if (socket === undefined || !this.#inflight.has(request.id)) return;
      this.#sendFrame(socket, request.frame);
    }, wait);
  }

  // ---- liveness ----

  #startPinging(socket: WebSocketLike): void {
    if (this.#pingIntervalMs === 0) return;
    this.#pingTimer = setTimeout(() => {
      const id = this.#newId();
      this.#pingId = id;
      this.#sendFrame(socket, { type: "ping", id });
      this.#pingTimer = setTimeout(() => {
        this.#pingTimer = undefined;
        this.#drop(socket, "no pong within pongTimeoutMs");
      }, this.#pongTimeoutMs);
    }, this.#pingIntervalMs);
  }

  #onPong(socket: WebSocketLike): void {
    if (this.#pingId === undefined) return;
    this.#pingId = undefined;
    if (this.#pingTimer !== undefined) clearTimeout(this.#pingTimer);
    this.#startPinging(socket);
  }

  // ---- token refresh ----

  #onExpiring(socket: WebSocketLike, expiresAt: number): void {
    this.#emit("expiring", expiresAt);
    const source = this.#token;
    // A string token or a ticket cannot be renewed in place; see ConnectOptions.
    if (typeof source !== "function" || this.#refreshing) return;
    this.#refreshing = true;
    const current = () => socket === this.#socket && this.#state !== "closed";
    const done = () => {
      if (current()) this.#refreshing = false;
    };
    Promise.resolve().then(source).then((token) => {
      if (!current()) return;
      const frame: ClientFrame = { type: "refresh", token, id: this.#newId() };
      const request = this.#track(frame, "refresh", (reply) => {
        done();
        if (reply.type !== "refreshed") return;
        if (this.#welcome !== undefined) this.#welcome.expiresAt = reply.expiresAt;
        this.#emit("refreshed", reply.expiresAt);
      }, (err) => {
        done();
        if (err instanceof RealtimeError) this.#emitError(err);
      });
      this.#send(socket, request);
    }, (err: unknown) => {
      done();
      this.#emitError(
        new RealtimeError("token_failed", "Getting a fresh token failed", { cause: err }),
      );
    });
  }

  // ---- requests ----

  #request<T = void>(
    frame: ClientFrame,
    kind: RequestKind,
    onSuccess: (reply: ServerMessage) => T,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const room = "room" in frame ? frame.room : undefined;
      if (this.#state === "closed") {
        reject(new RealtimeError("closed", "The client is closed", { room }));
        return;
      }
      const socket = this.#socket;
      const open = this.#state === "open" && socket !== undefined;
      if (!open && this.#queue.length >= this.#maxQueue) {
        const message = `Not connected, and ${this.#maxQueue} requests are already queued`;
        reject(new RealtimeError("queue_full", message, { room }));
        return;
      }
      const request = this.#track(frame, kind, (reply) => {
        try {
          resolve(onSuccess(reply));
        } catch (err) {
          reject(err);
        }
      }, reject);
      if (open) this.#send(socket, request);
      else this.#queue.push(request);
    });
  }

  /** Creates a request and starts its timeout; the caller sends or queues it. */
  #track(
    frame: ClientFrame,
    kind: RequestKind,
    onReply: (reply: ServerMessage) => void,
    reject: (error: Error) => void,
  ): PendingRequest {
    const request: PendingRequest = {
      id: frame.id,
      kind,
      frame,
      onReply,
      reject,
      timer: undefined,
    };
    request.timer = setTimeout(() => {
      request.timer = undefined;
      if (request.retry !== undefined) clearTimeout(request.retry);
      request.retry = undefined;
      const index = this.#queue.indexOf(request);
      if (index !== -1) this.#queue.splice(index, 1);
      this.#inflight.delete(request.id);
      const room = "room" in frame ? frame.room : undefined;
      const message = `No reply to ${frame.type} within ${this.#requestTimeoutMs} ms`;
      reject(new RealtimeError("timeout", message, { room }));
    }, this.#requestTimeoutMs);
    return request;
  }

  #send(socket: WebSocketLike, request: PendingRequest): void {
    this.#inflight.set(request.id, request);
    this.#sendFrame(socket, request.frame);
  }

  #sendFrame(socket: WebSocketLike, frame: ClientFrame): void {
    // Not open means closing: its close event will requeue or reject what is in flight.
    if (socket.readyState !== OPEN) return;
    try {
      socket.send(JSON.stringify(frame));
    } catch {
      // Same as above, closing under us.
    }
  }

  /** Removes a request from the tables and stops its timer, without settling its promise. */
  #settle(request: PendingRequest): void {
    if (request.timer !== undefined) clearTimeout(request.timer);
    if (request.retry !== undefined) clearTimeout(request.retry);
    request.timer = undefined;
    request.retry = undefined;
    this.#inflight.delete(request.id);
  }

  #succeed(request: PendingRequest, reply: ServerMessage): void {
    this.#settle(request);
    request.onReply(reply);
  }

  #fail(request: PendingRequest, error: Error): void {
    this.#settle(request);
    request.reject(error);
  }

  #newId(): string {
    return this.#idPrefix + (++this.#nextId).toString(36);
  }

  // ---- events ----

  #emit<K extends RealtimeEventName>(event: K, ...args: Parameters<RealtimeEvents[K]>): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as unknown as (...a: Parameters<RealtimeEvents[K]>) => void)(...args);
      } catch (err) {
        report(err);
      }
    }
  }

  #emitError(error: RealtimeError): void {
    this.#emit("error", error);
  }
}

/** Surfaces an exception from app code (a handler or listener) without breaking the client. */
function report(error: unknown): void {
  const reportError = (globalThis as { reportError?: (error: unknown) => void }).reportError;
  if (reportError !== undefined) {
    reportError(error);
    return;
  }
  setTimeout(() => {
    throw error;
  });
}
