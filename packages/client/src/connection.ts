/**
 * One connection attempt after another, one socket at a time: the URL and
 * credential of each attempt (a token in the `bearer` subprotocol, or a fresh
 * one-time ticket), the wait for `welcome`, app-level pings once welcomed,
 * and closing sockets without waiting on a dead peer. Whether and when to try
 * again is the caller's decision (see `backoff.ts`).
 *
 * @module
 */
import { ClientCloseCode } from "./codes.ts";
import { RealtimeError } from "./errors.ts";
import type { TokenSource } from "./options.ts";
import {
  CLOSED,
  type Endpoints,
  sendJson,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./transport.ts";

/** How long `close()` waits for sockets to finish closing before resolving anyway. */
const CLOSE_GRACE_MS = 3_000;

type Timer = ReturnType<typeof setTimeout>;

/** What a {@linkcode Connection} tells its owner. */
export interface ConnectionEvents {
  /** A text frame arrived on the current socket. */
  frame(socket: WebSocketLike, data: string): void;
  /**
   * The current socket is gone: closed by the peer or the network, or dropped
   * as dead. `welcomed` says whether it had received its `welcome`.
   */
  lost(code: number, reason: string, welcomed: boolean): void;
  /** An attempt could not start: the URL function, the credential or the socket failed. */
  failed(error: RealtimeError): void;
}

/** Settings of a {@linkcode Connection}; see `ConnectOptions` for each. */
export interface ConnectionOptions {
  /** Where each attempt goes. */
  readonly endpoints: Endpoints;
  /** Bearer token, or a function returning one. */
  readonly token: TokenSource | undefined;
  /** Returns a one-time ticket. */
  readonly ticket: (() => string | Promise<string>) | undefined;
  /** The WebSocket implementation. */
  readonly WebSocket: WebSocketConstructor;
  /** Most time from creating the socket to `welcome`. */
  readonly connectTimeoutMs: number;
  /** Interval between pings once welcomed; 0 disables them. */
  readonly pingIntervalMs: number;
  /** How long a ping may go without a `pong`. */
  readonly pongTimeoutMs: number;
  /** A fresh request id, for pings. */
  readonly newId: () => string;
}

/** The client's current socket and its timers. */
export class Connection {
  readonly #options: ConnectionOptions;
  readonly #events: ConnectionEvents;
  #socket: WebSocketLike | undefined;
  /** Whether the current socket got its `welcome` (it may still be rejoining). */
  #welcomed = false;
  /** Bumped for every attempt and on stop, so a stale async step can tell it is stale. */
  #generation = 0;
  #connectTimer: Timer | undefined;
  #pingTimer: Timer | undefined;
  #pingId: string | undefined;
  /** Sockets told to close whose close event has not arrived yet. */
  readonly #draining = new Set<WebSocketLike>();
  readonly #drainWaiters = new Set<() => void>();

  /**
   * @param options endpoints, credentials and timers
   * @param events where frames, losses and failed attempts go
   */
  constructor(options: ConnectionOptions, events: ConnectionEvents) {
    this.#options = options;
    this.#events = events;
  }

  /** The current socket, from its creation until it is lost. */
  get socket(): WebSocketLike | undefined {
    return this.#socket;
  }

  /** Whether the current socket got its `welcome`. */
  get welcomed(): boolean {
    return this.#welcomed;
  }

  /** Starts one attempt: next URL, a credential, a socket, then waits for `welcome`. */
  async open(): Promise<void> {
    const generation = ++this.#generation;
    let url: URL;
    try {
      url = this.#options.endpoints.next();
    } catch (err) {
      this.#events.failed(
        new RealtimeError("bad_request", "The URL function failed", { cause: err }),
      );
      return;
    }
    let protocols: string[] | undefined;
    try {
      protocols = await this.#credential(url);
    } catch (err) {
      if (generation !== this.#generation) return;
      const error = new RealtimeError("token_failed", "Getting a token or ticket failed", {
        cause: err,
      });
      this.#events.failed(error);
      return;
    }
    if (generation !== this.#generation) return;
    let socket: WebSocketLike;
    try {
      const { WebSocket } = this.#options;
      socket = protocols === undefined
        ? new WebSocket(url.href)
        : new WebSocket(url.href, protocols);
    } catch (err) {
      // E.g. a token with characters a subprotocol cannot carry.
      this.#events.failed(
        new RealtimeError("bad_request", "Could not create the WebSocket", { cause: err }),
      );
      return;
    }
    this.#attach(socket);
  }

  /** Puts a ticket on `url`, or returns the subprotocol offer carrying the token. */
  async #credential(url: URL): Promise<string[] | undefined> {
    const { ticket, token } = this.#options;
    if (ticket !== undefined) {
      url.searchParams.set("ticket", await ticket());
    } else if (token !== undefined) {
      return ["bearer", typeof token === "function" ? await token() : token];
    }
    return undefined;
  }

  #attach(socket: WebSocketLike): void {
    this.#socket = socket;
    this.#welcomed = false;
    socket.onmessage = (event) => {
      if (typeof event.data === "string") this.#events.frame(socket, event.data);
    };
    socket.onclose = (event) => {
      if (socket !== this.#socket) return;
      this.#socket = undefined;
      this.#lost(event.code, event.reason);
    };
    // The close event that always follows carries what little the browser tells us.
    socket.onerror = () => {};
    this.#connectTimer = setTimeout(() => {
      this.#connectTimer = undefined;
      this.drop(socket, "no welcome within connectTimeoutMs");
    }, this.#options.connectTimeoutMs);
  }

  /**
   * The server welcomed `socket`: stops the connect timeout and starts
   * pinging. Returns false for a second `welcome` on the same socket.
   */
  welcome(socket: WebSocketLike): boolean {
    if (this.#welcomed) return false;
    this.#welcomed = true;
    if (this.#connectTimer !== undefined) clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#startPinging(socket);
    return true;
  }

  /** A `pong` arrived; one answering the outstanding ping (or without an id) schedules the next. */
  pong(socket: WebSocketLike, id: string | undefined): void {
    if (id !== undefined && id !== this.#pingId) return;
    if (this.#pingId === undefined) return;
    this.#pingId = undefined;
    if (this.#pingTimer !== undefined) clearTimeout(this.#pingTimer);
    this.#startPinging(socket);
  }

  #startPinging(socket: WebSocketLike): void {
    const { pingIntervalMs, pongTimeoutMs, newId } = this.#options;
    if (pingIntervalMs === 0) return;
    this.#pingTimer = setTimeout(() => {
      const id = newId();
      this.#pingId = id;
      sendJson(socket, { type: "ping", id });
      this.#pingTimer = setTimeout(() => {
        this.#pingTimer = undefined;
        this.drop(socket, "no pong within pongTimeoutMs");
      }, pongTimeoutMs);
    }, pingIntervalMs);
  }

  /** Gives up on a socket that is open but not working; reported as a loss with code 4000. */
  drop(socket: WebSocketLike, reason: string): void {
    if (socket !== this.#socket) return;
    this.#socket = undefined;
    this.abandon(socket, ClientCloseCode.DeadConnection, reason);
    this.#lost(ClientCloseCode.DeadConnection, reason);
  }

  #lost(code: number, reason: string): void {
    const welcomed = this.#welcomed;
    this.#welcomed = false;
    this.#stopTimers();
    this.#events.lost(code, reason, welcomed);
  }

  /** For good: no attempt in progress goes on, and the current socket is forgotten. */
  stop(): void {
    this.#generation++;
    this.#stopTimers();
    this.#socket = undefined;
    this.#welcomed = false;
  }

  #stopTimers(): void {
    if (this.#connectTimer !== undefined) clearTimeout(this.#connectTimer);
    if (this.#pingTimer !== undefined) clearTimeout(this.#pingTimer);
    this.#connectTimer = undefined;
    this.#pingTimer = undefined;
    this.#pingId = undefined;
  }

  /**
   * Closes a socket without waiting for it: a dead peer may never finish the
   * closing handshake. Its close event only settles {@linkcode Connection.drained}
   * and is passed to `onClose`, if given.
   */
  abandon(
    socket: WebSocketLike,
    code: number,
    reason: string,
    onClose?: (code: number, reason: string) => void,
  ): void {
    socket.onmessage = null;
    socket.onerror = null;
    if (socket.readyState === CLOSED) {
      socket.onclose = null;
      onClose?.(code, reason);
      return;
    }
    this.#draining.add(socket);
    socket.onclose = (event) => {
      socket.onclose = null;
      this.#draining.delete(socket);
      onClose?.(event.code, event.reason);
      if (this.#draining.size > 0) return;
      for (const waiter of [...this.#drainWaiters]) waiter();
    };
    try {
      socket.close(code, reason);
    } catch {
      // Already closing: the close event still comes.
    }
  }

  /** Resolves once every abandoned socket has closed, or after a grace period. */
  drained(): Promise<void> {
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
}
