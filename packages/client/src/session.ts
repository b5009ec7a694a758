/**
 * One client's protocol state: the lifecycle (`connecting`, `open`,
 * `reconnecting`, `closed`), what the server's messages do (welcome and
 * rejoins, room messages, replies, presence, pongs, token expiry, errors),
 * and when to reconnect. `RealtimeClient` is its documented face; the parts
 * it drives live in their own modules.
 *
 * @module
 */
import type { ServerMessage } from "./wire.ts";
import { mayReconnectAfter, Reconnector } from "./backoff.ts";
import { Connection } from "./connection.ts";
import { RealtimeError } from "./errors.ts";
import { Emitter, type RealtimeEventName, type RealtimeEvents, report } from "./events.ts";
import { type ClientFrame, decodeFrame } from "./frames.ts";
import { type ConnectOptions, settingsFrom, type TokenSource, type UrlSource } from "./options.ts";
import { type RequestKind, Requests } from "./requests.ts";
import { Rooms } from "./rooms.ts";
import { Endpoints, type WebSocketLike } from "./transport.ts";
import type { ConnectionState, RoomHandler, RoomMessage, WelcomeInfo } from "./types.ts";

/** The state and wiring behind one `RealtimeClient`. */
export class Session {
  readonly #token: TokenSource | undefined;
  readonly #ticket: (() => string | Promise<string>) | undefined;
  /** Absent when reconnecting is off. */
  readonly #reconnector: Reconnector | undefined;
  /** The current socket and its timers. */
  readonly connection: Connection;
  /** Requests queued and in flight. */
  readonly requests: Requests;
  /** The joined rooms. */
  readonly rooms: Rooms = new Rooms();
  /** The app's listeners. */
  readonly events: Emitter = new Emitter();
  /** Where the connection is; see `RealtimeClient.state`. */
  state: ConnectionState = "connecting";
  /** What the latest `welcome` said, with the refreshed expiry. */
  welcome: WelcomeInfo | undefined;
  #everWelcomed = false;
  #rejoinsLeft = 0;
  #refreshing = false;

  /**
   * Starts connecting at once.
   *
   * @param url WebSocket endpoint(s)
   * @param options see `ConnectOptions`
   */
  constructor(url: UrlSource, options: ConnectOptions) {
    const settings = settingsFrom(options);
    const endpoints = new Endpoints(url, settings.batch);
    this.#token = settings.token;
    this.#ticket = settings.ticket;
    this.#reconnector = settings.reconnect === false
      ? undefined
      : new Reconnector(settings.reconnect);
    const requests = this.requests = new Requests(settings.maxQueue, settings.requestTimeoutMs);
    this.connection = new Connection({ ...settings, endpoints, newId: () => requests.newId() }, {
      frame: (socket, data) => this.#onFrame(socket, data),
      lost: (code, reason, welcomed) => this.#disconnected(code, reason, welcomed),
      failed: (error) => {
        this.#emitError(error);
        this.#scheduleReconnect(false);
      },
    });
    void this.connection.open();
  }

  /** Closes for good; resolves once the socket has closed (see `RealtimeClient.close`). */
  close(): Promise<void> {
    if (this.state !== "closed") {
      const socket = this.connection.socket;
      this.finish();
      if (socket !== undefined) {
        this.connection.abandon(socket, 1000, "client closed", (code, reason) => {
          this.#emit("close", code, reason);
        });
      }
    }
    return this.connection.drained();
  }

  // ---- connection lifecycle ----

  /** The socket is gone: settle its requests, then reconnect or stop. */
  #disconnected(code: number, reason: string, welcomed: boolean): void {
    this.#rejoinsLeft = 0;
    this.#refreshing = false;
    this.requests.disconnected(code, (room) => this.rooms.isHistory(room));
    this.#emit("close", code, reason);
    if (this.state === "closed") return; // a listener called close()
    // A fresh token or ticket can fix an expired or refused one; a fixed string cannot.
    const refreshable = typeof this.#token === "function" || this.#ticket !== undefined;
    if (this.#reconnector === undefined || !mayReconnectAfter(code, refreshable)) {
      this.finish();
      return;
    }
    this.#scheduleReconnect(welcomed);
  }

  #scheduleReconnect(welcomed: boolean): void {
    const reconnector = this.#reconnector;
    if (reconnector === undefined) {
      this.finish();
      return;
    }
    const limit = welcomed ? undefined : reconnector.failedBeforeWelcome();
    if (limit !== undefined) {
      this.#emitError(
        new RealtimeError(
          "handshake_failed",
          `${limit} connection attempts in a row failed before the server's welcome; ` +
            "the credentials may be refused",
        ),
      );
    }
    if (this.state === "closed") return;
    this.state = "reconnecting";
    const { attempt, delayMs } = reconnector.next();
    this.#emit("reconnecting", attempt, delayMs);
    if (this.state !== "reconnecting") return; // a listener called close()
    reconnector.schedule(delayMs, () => void this.connection.open());
  }

  /** Terminal state: nothing will be sent or retried again. */
  finish(): void {
    this.state = "closed";
    this.connection.stop();
    this.#reconnector?.cancel();
    this.requests.close();
    this.rooms.clear();
  }

  // ---- incoming frames ----

  #onFrame(socket: WebSocketLike, data: string): void {
    for (const message of decodeFrame(data)) {
      // A handler may have closed the client, or a listener dropped the socket.
      if (socket !== this.connection.socket) return;
      if (message === undefined) {
        this.#emitError(
          new RealtimeError("bad_frame", "The server sent a frame that is not a JSON message"),
        );
      } else {
        this.#dispatch(socket, message);
      }
    }
  }

  #dispatch(socket: WebSocketLike, message: ServerMessage): void {
    switch (message.type) {
      case "welcome":
        this.#onWelcome(socket, message);
        return;
      case "message":
        this.#deliver(message);
        return;
      case "joined":
      case "ack":
      case "refreshed":
      case "history":
      case "rpc_result":
        this.requests.reply(message.id, message);
        return;
      case "left":
        if (message.reason === "revoked" && this.rooms.delete(message.room)) {
          this.#emit("left", message.room, "revoked");
        }
        this.requests.reply(message.id, message);
        return;
      case "presence_state":
      case "presence_diff": {
        const change = this.rooms.applyPresence(message);
        if (change !== undefined) this.#emit("presence", message.room, change);
        return;
      }
      case "pong":
        this.connection.pong(socket, message.id);
        return;
      case "expiring":
        this.#onExpiring(socket, message.expiresAt);
        return;
      case "error":
        this.#onError(message);
        return;
    }
  }

  #deliver(message: Extract<ServerMessage, { type: "message" }>): void {
    const joined = this.rooms.get(message.room);
    if (joined === undefined || !joined.accept(message)) return;
    for (const handler of [...joined.handlers] as RoomHandler<unknown>[]) {
      // A handler may have closed the client, left the room or unsubscribed another.
      if (this.rooms.get(message.room) !== joined) return;
      if (!joined.handlers.has(handler as RoomHandler<never>)) continue;
      try {
        handler(message.payload, message as RoomMessage<unknown>);
      } catch (err) {
        report(err);
      }
    }
  }

  #onWelcome(socket: WebSocketLike, message: Extract<ServerMessage, { type: "welcome" }>): void {
    if (!this.connection.welcome(socket)) return;
    this.#reconnector?.reset();
    this.welcome = {
      connectionId: message.connectionId,
      userId: message.userId,
      expiresAt: message.expiresAt,
      instanceId: message.instanceId,
      reconnected: this.#everWelcomed,
    };
    this.#everWelcomed = true;
    const rooms = this.rooms.names();
    this.#rejoinsLeft = rooms.length;
    if (rooms.length === 0) this.#becomeOpen(socket);
    for (const room of rooms) this.#rejoin(socket, room);
  }

  /** Joins `room` again on a new connection, from its last position when recovering. */
  #rejoin(socket: WebSocketLike, room: string): void {
    const frame: ClientFrame = { type: "join", room, id: this.requests.newId() };
    const since = this.rooms.get(room)?.since();
    if (since !== undefined) frame.since = since;
    const request = this.requests.track(frame, "rejoin", (reply) => {
      const joined = this.rooms.get(room);
      if (reply.type === "joined" && joined !== undefined) {
        this.#emit("rejoin", room, joined.joined(reply));
      }
      if (reply.type === "error") {
        this.rooms.delete(room);
        const error = new RealtimeError(reply.code, `Rejoining failed: ${reply.message}`, { room });
        this.#emitError(error);
        this.#emit("left", room, "rejoin_failed");
      }
      this.#rejoined(socket);
    }, (err) => {
      // The room stays: the next reconnect tries again.
      if (err instanceof RealtimeError) this.#emitError(err);
      this.#rejoined(socket);
    });
    this.requests.send(socket, request);
  }

  #rejoined(socket: WebSocketLike): void {
    if (socket !== this.connection.socket || this.#rejoinsLeft === 0) return;
    if (--this.#rejoinsLeft === 0) this.#becomeOpen(socket);
  }

  #becomeOpen(socket: WebSocketLike): void {
    const welcome = this.welcome;
    if (socket !== this.connection.socket || welcome === undefined) return;
    this.state = "open";
    this.requests.flush(socket);
    this.#emit("open", { ...welcome });
  }

  #onError(message: Extract<ServerMessage, { type: "error" }>): void {
    const request = this.requests.inflight(message.id);
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
      this.requests.retryLater(request, message.retryAfterMs, () => this.connection.socket);
    } else if (
      request.kind === "rejoin" || (request.kind === "leave" && message.code === "not_joined")
    ) {
      this.requests.succeed(request, message);
    } else {
      this.requests.fail(request, error);
    }
  }

  // ---- token refresh ----

  #onExpiring(socket: WebSocketLike, expiresAt: number): void {
    this.#emit("expiring", expiresAt);
    const source = this.#token;
    // A string token or a ticket cannot be renewed in place; see ConnectOptions.
    if (typeof source !== "function" || this.#refreshing) return;
    this.#refreshing = true;
    const current = () => socket === this.connection.socket && this.state !== "closed";
    const done = () => {
      if (current()) this.#refreshing = false;
    };
    Promise.resolve().then(source).then((token) => {
      if (!current()) return;
      const frame: ClientFrame = { type: "refresh", token, id: this.requests.newId() };
      const request = this.requests.track(frame, "refresh", (reply) => {
        done();
        if (reply.type !== "refreshed") return;
        if (this.welcome !== undefined) this.welcome.expiresAt = reply.expiresAt;
        this.#emit("refreshed", reply.expiresAt);
      }, (err) => {
        done();
        if (err instanceof RealtimeError) this.#emitError(err);
      });
      this.requests.send(socket, request);
    }, (err: unknown) => {
      done();
      this.#emitError(
        new RealtimeError("token_failed", "Getting a fresh token failed", { cause: err }),
      );
    });
  }

  // ---- requests and events ----

  /**
   * Sends a request now when open, else queues it (up to `maxQueue`);
   * resolves with what `onSuccess` makes of the reply.
   */
  request<T = void>(
    frame: ClientFrame,
    kind: RequestKind,
    onSuccess: (reply: ServerMessage) => T,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const room = "room" in frame ? frame.room : undefined;
      if (this.state === "closed") {
        reject(new RealtimeError("closed", "The client is closed", { room }));
        return;
      }
      const socket = this.connection.socket;
      const open = this.state === "open" && socket !== undefined;
      if (!open && this.requests.full) {
        const message = `Not connected, and ${this.requests.maxQueue} requests are already queued`;
        reject(new RealtimeError("queue_full", message, { room }));
        return;
      }
      const request = this.requests.track(frame, kind, (reply) => {
        try {
          resolve(onSuccess(reply));
        } catch (err) {
          reject(err);
        }
      }, reject);
      if (open) this.requests.send(socket, request);
      else this.requests.enqueue(request);
    });
  }

  #emit<K extends RealtimeEventName>(event: K, ...args: Parameters<RealtimeEvents[K]>): void {
    this.events.emit(event, ...args);
  }

  #emitError(error: RealtimeError): void {
    this.#emit("error", error);
  }
}
