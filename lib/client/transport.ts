/**
 * The socket the client talks through: the subset of the DOM `WebSocket` it
 * uses, sending a frame, and the endpoints it connects to in turn.
 *
 * @module
 */
import type { UrlSource } from "./options.ts";

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
