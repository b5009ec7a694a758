/**
 * The socket the client talks through: the subset of the DOM `WebSocket` it
 * uses, sending a frame, and the endpoints it connects to in turn.
 *
 * @module
 */
import type { UrlSource } from "./options.ts";

/**
 * An event handler property of {@linkcode WebSocketLike}. Declared as a
 * method, so that implementations whose handlers take a richer event (the
 * DOM's `MessageEvent`, `ws`'s `WebSocket.MessageEvent`) still fit.
 */
export type SocketHandler<E> = { bivarianceHack(event: E): void }["bivarianceHack"] | null;

/**
 * The subset of the DOM `WebSocket` the client uses. Browsers', Deno's,
 * Bun's and Node 22's global `WebSocket` fit, and so does the `ws` package's;
 * no DOM type is needed to compile against it.
 */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** Send one text frame. */
  send(data: string): void;
  /** Start the closing handshake. */
  close(code?: number, reason?: string): void;
  /** Called once the handshake succeeded. */
  onopen: SocketHandler<unknown>;
  /** Called for every frame; the client reads text frames only. */
  onmessage: SocketHandler<{ readonly data: unknown }>;
  /** Called once, when the socket is closed for whatever reason. */
  onclose: SocketHandler<{ readonly code: number; readonly reason: string }>;
  /** Called on failure, always followed by `onclose`. */
  onerror: SocketHandler<unknown>;
}

/** A constructor compatible with the DOM `WebSocket` (and `ws`'s). */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
) => WebSocketLike;

/** `WebSocket.readyState` of an open socket; the constants are not on every implementation. */
export const OPEN = 1;
/** `WebSocket.readyState` of a closed socket. */
export const CLOSED = 3;

/**
 * Sends `frame` as JSON when the socket is open. A socket that is not open is
 * closing: its close event will requeue or reject what is in flight.
 */
export function sendJson(socket: WebSocketLike, frame: unknown): void {
  if (socket.readyState !== OPEN) return;
  try {
    socket.send(JSON.stringify(frame));
  } catch {
    // Same as above, closing under us.
  }
}

/** A `ws:`/`wss:` URL from `source`, relative to the page in a browser; `http(s):` is mapped. */
export function resolveUrl(source: string | URL): URL {
  const url = new URL(source, pageHref());
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  return url;
}

function pageHref(): string | undefined {
  // `location` exists in browsers and, without --location, is undefined in Deno.
  return (globalThis as { location?: { href?: string } | undefined }).location?.href;
}

/** Where each connection attempt goes: a function's answer, or the next entry of a list. */
export class Endpoints {
  readonly #urls: readonly URL[] | (() => string | URL);
  readonly #batch: boolean;
  #index = 0;

  /**
   * @param source one URL, a list tried in turn, or a function asked before each attempt
   * @param batch ask the server to pack several messages per frame (`?batch=1`)
   * @throws {TypeError} for an empty list or a malformed URL
   */
  constructor(source: UrlSource, batch: boolean) {
    this.#batch = batch;
    if (typeof source === "function") {
      this.#urls = source;
      return;
    }
    const list = typeof source === "string" || source instanceof URL ? [source] : source;
    if (list.length === 0) {
      throw new TypeError("Cannot connect: the URL list is empty, current value is []");
    }
    // Resolved now, so that a malformed URL throws here rather than on every attempt.
    this.#urls = list.map(resolveUrl);
  }

  /** The URL of the next attempt; throws what a URL function throws. */
  next(): URL {
    const url = typeof this.#urls === "function"
      ? resolveUrl(this.#urls())
      : new URL(this.#urls[this.#index++ % this.#urls.length]!);
    if (this.#batch) url.searchParams.set("batch", "1");
    return url;
  }
}
