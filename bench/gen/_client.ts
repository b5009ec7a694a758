/**
 * One client interface over the two wire protocols the generator speaks:
 * plain WebSocket with our JSON frames (ours, bare Deno, Node ws) and
 * Socket.IO events carrying the same objects (Socket.IO rows only).
 *
 * @module
 */
import { io, type Socket } from "socket.io-client";
import { WebSocket as EngineIoWebSocket } from "engine.io-client";
import type { RunningServer } from "../_servers.ts";

/** A decoded server frame; only the fields the generator reads are typed. */
export interface Frame {
  type?: unknown;
  id?: unknown;
  room?: unknown;
  payload?: unknown;
  code?: unknown;
  message?: unknown;
  /** In ours' `welcome`: which isolate or process holds the connection. */
  instanceId?: unknown;
  /** History rooms (`message`, `joined`, `ack`): the stream position. */
  offset?: unknown;
  epoch?: unknown;
  /** In `joined` after a `since`: whether the missed messages follow, and how many. */
  recovered?: unknown;
  missed?: unknown;
}

/** Called for every frame that is not the reply to a pending request. */
export type FrameHandler = (frame: Frame, receivedAt: number) => void;

/** A connected client (welcome already received). */
export interface BenchConnection {
  /** Sends one client message (`join`, `message`, ...). */
  send(message: Record<string, unknown>): void;
  /** Sends a message with an `id` and resolves with the frame that echoes that id. */
  request(message: Record<string, unknown> & { id: string }, timeoutMs?: number): Promise<Frame>;
  /** The server's `welcome` frame. */
  readonly welcome: Frame;
  /** Receives every frame that is not a request reply. */
  onFrame: FrameHandler | undefined;
  /** Error frames received so far. */
  readonly errors: number;
  /** True once the connection closed, for whatever reason. */
  readonly isClosed: boolean;
  /** Resolves when the connection is closed. */
  readonly closed: Promise<void>;
  close(): void;
}

/** Options for {@linkcode connect}. */
export interface ConnectOptions {
  /** JWT for ours; the bare servers ignore it. */
  token?: string | undefined;
  /** @default 15000 */
  timeoutMs?: number;
}

class Connection implements BenchConnection {
  welcome: Frame = {};
  onFrame: FrameHandler | undefined;
  errors = 0;
  isClosed = false;
  readonly closed: Promise<void>;
  #markClosed!: () => void;
  #pending = new Map<string, (frame: Frame) => void>();
  #sendRaw: (message: Record<string, unknown>) => void = () => {};
  #closeRaw: () => void = () => {};

  constructor() {
    this.closed = new Promise((resolve) => {
      this.#markClosed = () => {
        this.isClosed = true;
        resolve();
      };
    });
  }

  wire(send: (m: Record<string, unknown>) => void, close: () => void): void {
    this.#sendRaw = send;
    this.#closeRaw = close;
  }

  dispatch(frame: Frame, receivedAt: number): void {
    if (frame.type === "error") this.errors++;
    if (typeof frame.id === "string" && frame.type !== "message") {
      const resolve = this.#pending.get(frame.id);
      if (resolve) {
        this.#pending.delete(frame.id);
        resolve(frame);
        return;
      }
    }
    this.onFrame?.(frame, receivedAt);
  }

  ended(): void {
    this.#markClosed();
  }

  send(message: Record<string, unknown>): void {
    if (!this.isClosed) this.#sendRaw(message);
  }

  request(message: Record<string, unknown> & { id: string }, timeoutMs = 15_000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(message.id);
        reject(new Error(`no reply to ${String(message.type)} ${message.id} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(message.id, (frame) => {
        clearTimeout(timer);
        resolve(frame);
      });
      this.send(message);
    });
  }

  close(): void {
    this.#closeRaw();
  }
}

function connectPlain(server: RunningServer, conn: Connection, token: string | undefined): void {
  const ws = new WebSocket(server.wsUrl(token));
  conn.wire((m) => ws.send(JSON.stringify(m)), () => ws.close());
  ws.onmessage = (e: MessageEvent) => {
    const now = performance.now();
    if (typeof e.data !== "string") return;
    const text = e.data;
    // Ours may coalesce several frames into one, newline-separated (`?batch=1`).
    if (text.indexOf("\n") === -1) {
      conn.dispatch(JSON.parse(text) as Frame, now);
      return;
    }
    for (const line of text.split("\n")) {
      if (line.length > 0) conn.dispatch(JSON.parse(line) as Frame, now);
    }
  };
  ws.onclose = () => conn.ended();
  ws.onerror = () => {};
}

function connectSocketIo(server: RunningServer, conn: Connection, token: string | undefined): void {
  // The browser WebSocket transport runs on Deno's native WebSocket; the
  // default Node transport would go through the `ws` package on node:http.
  const socket: Socket = io(server.httpUrl, {
    transports: [EngineIoWebSocket],
    forceNew: true,
    reconnection: false,
    auth: token === undefined ? {} : { token },
  });
  conn.wire((m) => socket.emit(String(m.type), m), () => socket.disconnect());
  socket.onAny((_event: string, data: Frame) => conn.dispatch(data, performance.now()));
  socket.on("disconnect", () => conn.ended());
  socket.on("connect_error", () => {
    socket.disconnect();
    conn.ended();
  });
}

/** Opens one connection and resolves once the server's `welcome` arrived. */
export function connect(
  server: RunningServer,
  options: ConnectOptions = {},
): Promise<BenchConnection> {
  const { token, timeoutMs = 15_000 } = options;
  const conn = new Connection();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      conn.close();
      reject(new Error(`${server.spec.label}: no welcome within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.onFrame = (frame) => {
      if (frame.type !== "welcome") return;
      clearTimeout(timer);
      conn.welcome = frame;
      conn.onFrame = undefined;
      resolve(conn);
    };
    conn.closed.then(() => {
      clearTimeout(timer);
      reject(new Error(`${server.spec.label}: connection closed before welcome`));
    });
    if (server.spec.client === "socketio") connectSocketIo(server, conn, token);
    else connectPlain(server, conn, token);
  });
}

/** Options for {@linkcode connectMany}. */
export interface ConnectManyOptions {
  /** One token per connection (index i uses tokens[i % length]). */
  tokens?: readonly string[];
  /** Handshakes in flight at once; keeps the accept backlog from overflowing. @default 128 */
  concurrency?: number;
  /** @default 15000 */
  timeoutMs?: number;
}

/** Opens `count` connections; on any failure closes all of them and throws. */
export async function connectMany(
  server: RunningServer,
  count: number,
  options: ConnectManyOptions = {},
): Promise<BenchConnection[]> {
  const { tokens = [], concurrency = 128, timeoutMs = 15_000 } = options;
  const conns: BenchConnection[] = [];
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < count) {
      const i = next++;
      const token = tokens.length > 0 ? tokens[i % tokens.length] : undefined;
      try {
        conns[i] = await connect(server, { token, timeoutMs });
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (failure !== undefined) {
    await closeAll(conns.filter((c) => c !== undefined));
    throw failure;
  }
  return conns;
}

/** Joins each connection to `roomOf(i)` and waits for every `joined`. */
export async function joinAll(
  conns: readonly BenchConnection[],
  roomOf: (index: number) => string,
): Promise<void> {
  await Promise.all(conns.map(async (conn, i) => {
    const reply = await conn.request({ type: "join", room: roomOf(i), id: `j${i}` });
    if (reply.type !== "joined") {
      throw new Error(`join refused: ${JSON.stringify(reply)}`);
    }
  }));
}

/**
 * Closes connections and waits (bounded) until they are gone, so one run's
 * teardown does not bill CPU to the next run's measurement window.
 */
export async function closeAll(
  conns: readonly BenchConnection[],
  timeoutMs = 10_000,
): Promise<void> {
  for (const c of conns) c.close();
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all(conns.map((c) => c.closed)),
    new Promise((r) => timer = setTimeout(r, timeoutMs)),
  ]);
  clearTimeout(timer);
}
