/**
 * The browser client for the realtime server: one reconnecting WebSocket per
 * {@linkcode connect} call, with room handlers, request/reply correlation,
 * an offline queue, app-level liveness pings and token refresh.
 *
 * This is the entry module: it re-exports the public API and wires the parts,
 * each in its own module as centrifuge-js splits its client:
 * `connection.ts` (one socket at a time: URL, credential, welcome timeout,
 * pings), `transport.ts` (the WebSocket subset and endpoints), `backoff.ts`
 * (when to reconnect), `requests.ts` (ids, timeouts, the offline queue),
 * `rooms.ts` and `room.ts` (joined rooms, offsets and recovery),
 * `presence.ts` (member maps), `frames.ts` (the wire format), `codes.ts` and
 * `errors.ts`, `events.ts`, `types.ts` and `options.ts`.
 *
 * The client uses no Deno-only API and imports no value from the server's
 * modules. `deno task build:client` bundles it into `web/client/client.js`
 * (committed; a test fails when it is stale), which the server serves as
 * `/client.js`. The `import type` lines disappear in that step; they keep the
 * client's view of the wire protocol tied to the server's single definition
 * of it.
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
import type { JsonValue } from "./wire.ts";
import { RealtimeError } from "./errors.ts";
import type { RealtimeEventName, RealtimeEvents } from "./events.ts";
import type { ClientFrame } from "./frames.ts";
import type { ConnectOptions, UrlSource } from "./options.ts";
import type { PresenceSnapshot } from "./presence.ts";
import { assertRoomName, JoinedRoom, type RoomPosition } from "./room.ts";
import { Session } from "./session.ts";
import { Subscription, type SubscriptionOwner } from "./subscription.ts";
import type {
  ConnectionState,
  HistoryOptions,
  HistoryPage,
  JoinOptions,
  RoomHandler,
  RoomMessage,
} from "./types.ts";

export { backoffDelay, type ReconnectOptions } from "./backoff.ts";
export { ClientCloseCode, type ClientErrorCode } from "./codes.ts";
export { RealtimeError, type RealtimeErrorOptions } from "./errors.ts";
export type { RealtimeEventName, RealtimeEvents } from "./events.ts";
export type { ConnectOptions, TokenSource, UrlSource } from "./options.ts";
export type { PresenceChange, PresenceMember, PresenceSnapshot } from "./presence.ts";
export type { RejoinInfo, RoomPosition } from "./room.ts";
export { Subscription } from "./subscription.ts";
export type { WebSocketConstructor, WebSocketLike } from "./transport.ts";
export type {
  ConnectionState,
  HistoryOptions,
  HistoryPage,
  JoinOptions,
  LeftReason,
  RoomHandler,
  RoomMessage,
  WelcomeInfo,
} from "./types.ts";
export type { CloseCode, ErrorCode, JsonValue } from "./wire.ts";

/** How the client stores a subscription's handler. */
type StoredHandler = RoomHandler<never>;

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
  readonly #session: Session;
  /** Joins on their way, by room, so that a second `join` waits for the first. */
  readonly #joining = new Map<string, Promise<void>>();
  readonly #owner: SubscriptionOwner = {
    attached: (room, handler) =>
      this.#session.rooms.get(room)?.handlers.has(handler as StoredHandler) ?? false,
    detach: (room, handler) => this.#detach(room, handler),
    position: (room) => this.position(room),
  };

  /**
   * Prefer {@linkcode connect}.
   *
   * @param url WebSocket endpoint
   * @param options see {@linkcode ConnectOptions}
   */
  constructor(url: UrlSource, options: ConnectOptions = {}) {
    this.#session = new Session(url, options);
  }

  /** Where the connection is: `connecting` (first attempt), `open`, `reconnecting`, `closed`. */
  get state(): ConnectionState {
    return this.#session.state;
  }

  /** The user of the latest connection, from its `welcome`. */
  get userId(): string | undefined {
    return this.#session.welcome?.userId;
  }

  /** The latest connection's id, from its `welcome`. */
  get connectionId(): string | undefined {
    return this.#session.welcome?.connectionId;
  }

  /** The server instance of the latest connection, from its `welcome`. */
  get instanceId(): string | undefined {
    return this.#session.welcome?.instanceId;
  }

  /** Token expiry in seconds since the epoch (`null`: never), updated on refresh. */
  get expiresAt(): number | null | undefined {
    return this.#session.welcome?.expiresAt;
  }

  /** Rooms currently joined; they are rejoined after every reconnect. */
  get rooms(): string[] {
    return this.#session.rooms.names();
  }

  /** The last position seen in a joined history room (what a rejoin recovers from). */
  position(room: string): RoomPosition | undefined {
    return this.#session.rooms.position(room);
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
    return this.#session.rooms.presence(room);
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
    return this.#session.events.on(event, listener);
  }

  /**
   * Joins a room, or adds a handler to a room already joined. Resolves once
   * the server answers `joined` with a {@linkcode Subscription}; from then on,
   * `handler` receives the room's messages, across reconnects, until
   * `subscription.unsubscribe()` or `leave(room)`. A room may have several
   * subscriptions, each with its own handler, called in the order they
   * subscribed; the client stays in the room until the last one unsubscribes.
   * Joins of a room already being joined share the one request.
   *
   * Rejects with a {@linkcode RealtimeError} carrying the server's code
   * (`forbidden`, `too_many_rooms`, …) or `timeout`, `queue_full`, `closed`;
   * rejects with a `TypeError` for a malformed room name.
   *
   * @example
   * ```ts ignore
   * const sub = await rt.join<{ text: string }>("chat:lobby", (payload, message) => {
   *   console.log(`${message.from}: ${payload.text}`);
   * });
   * await sub.unsubscribe();
   * ```
   *
   * In a history room, messages carry `offset` and `epoch`, and by default
   * every rejoin after a reconnect asks for what was missed: replayed messages
   * reach the handlers like live ones, in order, never twice; see the `"rejoin"`
   * event.
   *
   * @param room room name: 1–128 of `A-Z a-z 0-9 _ - . : @ /`
   * @param handler receives each message published to the room
   * @param options recovery on rejoin (the first subscription's choice holds for the room)
   * @returns resolves on `joined` with this handler's subscription
   */
  join<T = JsonValue>(
    room: string,
    handler: RoomHandler<T>,
    options: JoinOptions = {},
  ): Promise<Subscription> {
    const { recover = true } = options;
    try {
      assertRoomName("join room", room);
    } catch (err) {
      return Promise.reject(err);
    }
    // One function per subscription, so that one handler may subscribe twice.
    const stored: StoredHandler = (payload, message) => {
      handler(payload as T, message as RoomMessage<T>);
    };
    return this.#attach(room, stored, recover).then(() =>
      new Subscription(room, this.#owner, stored)
    );
  }

  #attach(room: string, stored: StoredHandler, recover: boolean): Promise<void> {
    const existing = this.#session.rooms.get(room);
    if (existing !== undefined) {
      existing.handlers.add(stored);
      return Promise.resolve();
    }
    const pending = this.#joining.get(room);
    // The room may have been left again by the time that join settles: attach anew then.
    if (pending !== undefined) return pending.then(() => this.#attach(room, stored, recover));
    const request = this.#session.request(
      { type: "join", room, id: this.#session.requests.newId() },
      "join",
      (reply) => {
        const joined = new JoinedRoom<StoredHandler>(stored, recover);
        if (reply.type === "joined") joined.joined(reply);
        this.#session.rooms.add(room, joined);
      },
    );
    this.#joining.set(room, request);
    const settled = () => {
      if (this.#joining.get(room) === request) this.#joining.delete(room);
    };
    request.then(settled, settled);
    return request;
  }

  #detach(room: string, stored: unknown): Promise<void> {
    const joined = this.#session.rooms.get(room);
    if (joined === undefined || !joined.handlers.delete(stored as StoredHandler)) {
      return Promise.resolve();
    }
    return joined.handlers.size > 0 ? Promise.resolve() : this.leave(room);
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
      assertRoomName("read history", room);
    } catch (err) {
      return Promise.reject(err);
    }
    const frame: ClientFrame = { type: "history", room, id: this.#session.requests.newId() };
    if (options.limit !== undefined) frame.limit = options.limit;
    if (options.before !== undefined) frame.before = options.before;
    return this.#session.request(frame, "history", (reply) => {
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
   * Calls the backend over this connection (the server's `HOOK_RPC_URL`):
   * resolves with its answer's payload. Rejects with the server's error
   * (`rpc_error` or the backend's own code such as `not_found`, with its
   * message; `unavailable` when it did not answer; `rate_limited`), or
   * `disconnected` when the connection dropped
   * before the answer: a call is never resent, the backend may have acted.
   *
   * @example
   * ```ts ignore
   * const { total } = await rt.rpc<{ total: number }>("cart.total", { cart: 7 });
   * ```
   */
  rpc<T = JsonValue>(method: string, payload: JsonValue = null): Promise<T> {
    const frame: ClientFrame = { type: "rpc", method, payload, id: this.#session.requests.newId() };
    return this.#session.request(frame, "rpc", (reply) => {
      if (reply.type !== "rpc_result") {
        throw new RealtimeError("bad_frame", `Expected an rpc_result, got ${reply.type}`);
      }
      return reply.payload as T;
    });
  }

  /**
   * Leaves a room, ending all its subscriptions: their handlers stop receiving
   * messages immediately; the
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
      assertRoomName("leave room", room);
    } catch (err) {
      return Promise.reject(err);
    }
    const wasJoined = this.#session.rooms.delete(room);
    if (this.#session.state === "connecting" || this.#session.state === "reconnecting") {
      // Only a queued join, or a rejoin already sent on a welcomed socket, needs
      // undoing on the server; otherwise the room was ours only locally.
      const joinQueued = this.#session.requests.joinQueued(room);
      if (!joinQueued && !(wasJoined && this.#session.connection.welcomed)) {
        return Promise.resolve();
      }
    }
    return this.#session.request(
      { type: "leave", room, id: this.#session.requests.newId() },
      "leave",
      () => {},
    );
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
      assertRoomName("publish", room);
      if (payload === undefined) {
        throw new TypeError("Cannot publish: payload is required, current value is undefined");
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#session.request(
      { type: "message", room, payload, id: this.#session.requests.newId() },
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
    return this.#session.close();
  }
}
