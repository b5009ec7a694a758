/**
 * The WebSocket implementations the node front door can put on an upgraded
 * TCP socket:
 *
 * - `ws` (the default): npm `ws` in this isolate. It counts every incoming
 *   message as a whole, fragments included, against `MAX_MESSAGE_BYTES` and
 *   closes with 1009 the moment the count passes it, so no client can make
 *   the server hold more than that per connection. Deno's own socket bounds
 *   a frame (64 MiB) but not a fragmented message, which grows until V8's
 *   string limit ends the process (docs/upstream/deno-websocket-fragments.md).
 * - `deno`: Deno's native socket over the same TCP connection: cheaper per
 *   delivery, but with the unbounded fragmented message above.
 *
 * @module
 */
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
// @ts-types="@types/ws"
import { type WebSocket as WsSocket, WebSocketServer } from "ws";
import type { Upgraded, UpgradeOptions, WebSocketLike, WsEngineName } from "./types.ts";

/** The raw pieces of an HTTP upgrade, as `node:http` hands them over. */
export interface RawUpgrade {
  req: IncomingMessage;
  socket: Duplex;
  head: Uint8Array;
  /**
   * Tells the front door the connection is gone, for an engine that takes
   * the file descriptor over (Deno's socket): the node socket then never
   * reports its own close. Idempotent.
   */
  release: () => void;
}

/** Puts a WebSocket on a TCP socket whose request passed every check. */
export interface SocketEngine {
  readonly name: WsEngineName;
  /**
   * Upgrades `request` (the fetch form of `raw.req`) on `raw.socket`.
   * @throws {TypeError} when the handshake is malformed (the socket is then closed)
   */
  upgrade(request: Request, raw: RawUpgrade, options: UpgradeOptions): Upgraded;
  /** Stops the heartbeat timer. */
  close(): void;
}

/** Options for {@linkcode createEngine}. */
export interface EngineOptions {
  /** Largest incoming message, counted over all its fragments (`ws` engine). */
  maxMessageBytes: number;
}

/** An engine by name. */
export function createEngine(name: WsEngineName, options: EngineOptions): SocketEngine {
  return name === "ws" ? wsEngine(options) : denoEngine();
}

/** The 101 goes out with the upgrade; the fetch handler's return value is not used. */
const switched = (): Response => new Response(null, { status: 200 });

function denoEngine(): SocketEngine {
  return {
    name: "deno",
    upgrade(request, { socket, head, release }, { protocol, idleTimeoutSec }) {
      const { socket: ws } = Deno.upgradeWebSocket(request, {
        socket: socket as Socket,
        head,
        ...(protocol === undefined ? {} : { protocol }),
        idleTimeout: idleTimeoutSec,
      });
      // Deno owns the descriptor now: the node socket will not report its close.
      ws.addEventListener("close", release, { once: true });
      return { socket: ws, response: switched() };
    },
    close() {},
  };
}

/**
 * One text frame sent to many sockets is framed once: fan-out hands every
 * member the same string in a row, and a server's frames are not masked, so
 * the same bytes (header and UTF-8 payload, RFC 6455 §5.2) go to each
 * socket in a single write.
 */
let lastText: string | undefined;
let lastFrame: Buffer = Buffer.alloc(0);
function textFrame(text: string): Buffer {
  if (text === lastText) return lastFrame;
  const payload = Buffer.from(text, "utf8");
  const length = payload.byteLength;
  const headerBytes = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerBytes + length);
  frame[0] = 0x81; // FIN, text
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  payload.copy(frame, headerBytes);
  lastText = text;
  lastFrame = frame;
  return frame;
}

/** How long a peer that broke the protocol (or the size limit) keeps its socket after the close frame. */
const OVERSIZE_LINGER_MS = 200;

/** `ws`'s socket seen through {@linkcode WebSocketLike}. */
class WsAdapter implements WebSocketLike {
  binaryType: BinaryType = "arraybuffer";
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  onoversize: (() => void) | null = null;
  readonly #ws: WsSocket;
  readonly #tcp: Duplex;

  /**
   * @param ws the upgraded socket
   * @param tcp the connection under it
   */
  constructor(ws: WsSocket, tcp: Duplex) {
    this.#ws = ws;
    this.#tcp = tcp;
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      const payload = isBinary
        ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)
        : data.toString("utf8");
      this.onmessage?.(new MessageEvent("message", { data: payload }));
    });
    ws.on("close", (code: number, reason: Buffer) => {
      this.onclose?.(new CloseEvent("close", { code, reason: reason.toString("utf8") }));
    });
    ws.on("error", (err: Error & { code?: string }) => {
      // ws sends 1009 (or 1002), ends its side, and would read on only to
      // discard for up to 30 s waiting for the peer's close: cut the
      // connection once the close frame is out (or after a short linger).
      tcp.once("finish", () => tcp.destroy());
      const cut = setTimeout(() => ws.terminate(), OVERSIZE_LINGER_MS);
      Deno.unrefTimer(cut);
      if (err.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") this.onoversize?.();
      else this.onerror?.(new Event("error"));
    });
  }

  get readyState(): number {
    return this.#ws.readyState;
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /**
   * Writes a text frame straight to the connection: ws frames synchronously
   * (no compression here), so frames never interleave, and the bytes count
   * in `bufferedAmount` all the same. Nothing is sent once closing began.
   */
  send(data: string): void {
    if (this.#ws.readyState !== 1) return;
    this.#tcp.write(textFrame(data));
  }

  close(code?: number, reason?: string): void {
    this.#ws.close(code, reason);
  }

  /** Tells the session the socket is open, once it has attached its handlers. */
  opened(): void {
    this.onopen?.(new Event("open"));
  }
}

/**
 * Makes `end()` on an already ended stream a no-op. `ws` ends the TCP socket
 * and its frame parser again on the peer's FIN and on close; each repeat
 * builds an `ERR_STREAM_ALREADY_FINISHED` error, with a stack trace, that
 * nobody reads: a third of the server's CPU per handshake under Deno
 * (386 → 232 µs per connect-then-close cycle, measured with --cpu-prof).
 */
function endOnce(stream: { end: (...args: never[]) => unknown; writableEnded: boolean }): void {
  const end = stream.end.bind(stream);
  stream.end = ((...args: never[]) => stream.writableEnded ? stream : end(...args)) as typeof end;
}

function wsEngine({ maxMessageBytes }: EngineOptions): SocketEngine {
  const chosen = new WeakMap<IncomingMessage, string>();
  const server = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: maxMessageBytes,
    handleProtocols: (_offered, req) => chosen.get(req) ?? false,
  });
  /** Sockets by heartbeat; a socket that has not answered since the last round is dropped. */
  const open = new Map<WsSocket, { answered: boolean; intervalMs: number }>();
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  function startHeartbeat(intervalMs: number): void {
    if (heartbeat !== undefined) return;
    heartbeat = setInterval(() => {
      for (const [ws, state] of open) {
        if (!state.answered) {
          ws.terminate();
          continue;
        }
        state.answered = false;
        ws.ping();
      }
    }, intervalMs);
    Deno.unrefTimer(heartbeat);
  }
  return {
    name: "ws",
    upgrade(_request, { req, socket, head }, { protocol, idleTimeoutSec }) {
      if (protocol !== undefined) chosen.set(req, protocol);
      let accepted: WsSocket | undefined;
      server.handleUpgrade(req, socket, Buffer.from(head), (ws) => accepted = ws);
      if (accepted === undefined) {
        throw new TypeError("Cannot upgrade: the WebSocket handshake is malformed");
      }
      const ws = accepted;
      endOnce(socket);
      // ws's frame parser, a Writable it ends on close (not in its type definitions).
      const receiver = (ws as unknown as { _receiver?: Parameters<typeof endOnce>[0] })._receiver;
      if (receiver !== undefined) endOnce(receiver);
      const state = { answered: true, intervalMs: idleTimeoutSec * 1000 };
      open.set(ws, state);
      startHeartbeat(state.intervalMs);
      const alive = () => state.answered = true;
      ws.on("pong", alive);
      ws.on("message", alive);
      ws.on("close", () => open.delete(ws));
      const adapter = new WsAdapter(ws, socket);
      // A server-side `ws` socket is open at once: tell the session after it attached.
      queueMicrotask(() => adapter.opened());
      return { socket: adapter, response: switched() };
    },
    close() {
      clearInterval(heartbeat);
      server.close();
    },
  };
}
