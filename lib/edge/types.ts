/**
 * The edge's vocabulary: what a session needs from an upgraded socket, and
 * the function a front door hands the core to perform an upgrade. The core
 * never knows which HTTP server or WebSocket implementation is underneath.
 *
 * @module
 */

/**
 * The part of the WHATWG `WebSocket` a session uses. Deno's native socket
 * and the bounded engine's adapter (npm `ws`) both fit it.
 */
export interface WebSocketLike {
  binaryType: BinaryType;
  readonly readyState: number;
  /** Bytes queued, not yet written to the network (live). */
  readonly bufferedAmount: number;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  /**
   * Called instead of `onmessage` when the engine refused an incoming
   * message for passing the size limit as a whole (the engine has already
   * started closing with 1009). Deno's own socket never calls it.
   */
  onoversize?: (() => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/**
 * A session's backlog on its socket, for `SessionPort.bufferedAmount`: what
 * the socket still holds, or 0 once the session ended and the socket closed
 * (a closed socket's count no longer drains).
 */
export function socketBacklog(ws: WebSocketLike, ended: boolean): number {
  return ended && ws.readyState === WebSocket.CLOSED ? 0 : ws.bufferedAmount;
}

/** What an accepted upgrade gives the core. */
export interface Upgraded {
  /** The socket; its `open` event fires once the 101 is on its way. */
  socket: WebSocketLike;
  /** The response to return from the fetch handler (`Deno.serve` sends it; the node front door does not use it). */
  response: Response;
}

/** Options for an {@linkcode Upgrader}. */
export interface UpgradeOptions {
  /** The subprotocol to answer with, if the client offered one we speak. */
  protocol?: string;
  /** Seconds of silence after which the peer is pinged, then dropped. */
  idleTimeoutSec: number;
}

/**
 * Performs the WebSocket upgrade of `req`, after every check has passed.
 * Throws a `TypeError` for a handshake the implementation refuses
 * (malformed key or version).
 */
export type Upgrader = (req: Request, options: UpgradeOptions) => Upgraded;

/** `Deno.serve`'s upgrade: Deno's native socket. */
export function denoUpgrade(req: Request, { protocol, idleTimeoutSec }: UpgradeOptions): Upgraded {
  return Deno.upgradeWebSocket(req, {
    ...(protocol === undefined ? {} : { protocol }),
    idleTimeout: idleTimeoutSec,
  });
}

/** The HTTP servers main.ts can listen with. */
export const HTTP_SERVERS = ["node", "deno"] as const;
/**
 * `node`: the front door in lib/edge/node_server.ts (socket cap below the fd
 * limit, request-head deadline, shedding). `deno`: `Deno.serve`, whose
 * accept loop ends the process at the fd limit and which has no head
 * deadline: for platforms whose own proxy is the front door (Deno Deploy).
 */
export type HttpServerName = typeof HTTP_SERVERS[number];

/** The WebSocket implementations the node front door can put on an upgraded socket. */
export const WS_ENGINES = ["ws", "deno"] as const;
/**
 * `ws`: npm `ws` in-process, every incoming message bounded as a whole by
 * `MAX_MESSAGE_BYTES` (fragments included). `deno`: Deno's native socket,
 * cheaper fan-out, but a message is bounded per frame only (64 MiB) and a
 * fragmented one not at all.
 */
export type WsEngineName = typeof WS_ENGINES[number];
