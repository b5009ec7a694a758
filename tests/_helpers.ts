/**
 * Shared test helpers: an in-process server on port 0, token minting, a
 * WebSocket client with an awaitable inbox, raw HTTP handshakes, a fake clock.
 *
 * @module
 */
import type { z } from "zod";
import { MemoryAuditSink } from "../lib/audit.ts";
import type { Clock, TimerId } from "../lib/clock.ts";
import { loadConfig } from "../lib/config.ts";
import type { Config } from "../lib/config.ts";
import { mintToken } from "../lib/dev.ts";
import type { MintOptions } from "../lib/dev.ts";
import type { RoomRule } from "../lib/core/room_policy.ts";
import type { RealtimeServer, ServerOptions } from "../lib/server.ts";
import { createServer } from "../lib/server.ts";
import { connectionBudget, listen } from "../lib/edge/listen.ts";

/** The HS256 secret of test servers. */
export const SECRET = "test-secret-that-is-long-enough-0123456789";
export const SECRET_BYTES = new TextEncoder().encode(SECRET);

/** Signs a test token (HS256 with {@linkcode SECRET}). */
export function token(sub: string, options: Omit<MintOptions, "sub"> = {}): Promise<string> {
  return mintToken(SECRET_BYTES, { sub, rooms: ["*"], ...options });
}

/**
 * A test server listening on 127.0.0.1 and a random port. It is disposable:
 * `await using ts = await startServer()` closes it when the scope ends.
 */
export interface TestServer extends AsyncDisposable {
  server: RealtimeServer;
  config: Config;
  audit: MemoryAuditSink;
  port: number;
  /** `ws://127.0.0.1:<port>/ws` */
  wsUrl: string;
  /** `http://127.0.0.1:<port>` */
  httpUrl: string;
  /** Shuts down gracefully (2 s grace), stops listening, closes the server; idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a server with test defaults plus `env` overrides.
 *
 * @example
 * ```ts ignore
 * await using ts = await startServer({ HISTORY_SIZE: "10" });
 * const client = await connectAs(ts, "alice");
 * ```
 */
export async function startServer(
  env: Record<string, string> = {},
  options: Omit<ServerOptions, "config"> = {},
): Promise<TestServer> {
  const config = loadConfig({
    JWT_SECRET: SECRET,
    PORT: "0",
    HOSTNAME: "127.0.0.1",
    BUS: "memory",
    ...env,
  });
  const audit = options.audit instanceof MemoryAuditSink ? options.audit : new MemoryAuditSink();
  const server = await createServer({ audit, ...options, config });
  // The listener main.ts opens (HTTP_SERVER, WS_ENGINE), so tests run the real front door.
  const http = await listen(server.handler, {
    config: {
      port: config.server.port,
      hostname: "127.0.0.1",
      reusePort: false,
      edge: config.server.edge,
    },
    tls: undefined,
    budget: connectionBudget(config.limits.maxConnections, 1),
    maxMessageBytes: config.limits.maxMessageBytes,
    onListen() {},
  });
  const port = http.addr.port;
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      await server.shutdown({ graceMs: 2000 });
      await http.shutdown();
      await server.close();
    })();
  return {
    server,
    config,
    audit,
    port,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    httpUrl: `http://127.0.0.1:${port}`,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A parsed server message. */
export type Msg = Record<string, unknown> & { type: string };

/** A WebSocket client with an inbox that tests can await. */
export class Client {
  readonly ws: WebSocket;
  readonly inbox: Msg[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: { pred: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];

  constructor(url: string, init: { protocols?: string[]; headers?: Record<string, string> } = {}) {
    // Deno's WebSocket takes headers as an extension to the standard constructor.
    this.ws = new WebSocket(url, init as unknown as string[]);
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener("open", () => resolve(), { once: true });
      this.ws.addEventListener("error", () => reject(new Error("websocket error before open")), {
        once: true,
      });
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason }), {
        once: true,
      });
    });
    this.ws.addEventListener("message", (e) => {
      for (const line of String(e.data).split("\n")) {
        const msg = JSON.parse(line) as Msg;
        const i = this.#waiters.findIndex((w) => w.pred(msg));
        if (i === -1) this.inbox.push(msg);
        else this.#waiters.splice(i, 1)[0]!.resolve(msg);
      }
    });
  }

  /** Sends a JSON message (or a raw string). */
  send(message: unknown): void {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** Resolves with the first (queued or future) message matching `pred`. */
  next(pred: (m: Msg) => boolean = () => true, timeoutMs = 3000): Promise<Msg> {
    const i = this.inbox.findIndex(pred);
    if (i !== -1) return Promise.resolve(this.inbox.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const waiter = {
        pred,
        resolve: (m: Msg) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(
          new Error(
            `no matching message within ${timeoutMs} ms; inbox: ${JSON.stringify(this.inbox)}`,
          ),
        );
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Next message of a type. */
  nextOf(type: string, timeoutMs?: number): Promise<Msg> {
    return this.next((m) => m.type === type, timeoutMs);
  }

  /** Sends and waits for the reply carrying the same id. */
  request(message: Record<string, unknown> & { id: string }, timeoutMs?: number): Promise<Msg> {
    this.send(message);
    return this.next((m) => m.id === message.id, timeoutMs);
  }

  /** Closes and waits for the close event. */
  async close(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close(1000);
    await this.closed;
  }
}

/** Connects and waits for `welcome`. */
export async function connect(
  url: string,
  init: { protocols?: string[]; headers?: Record<string, string> } = {},
): Promise<{ client: Client; welcome: Msg }> {
  const client = new Client(url, init);
  await client.opened;
  const welcome = await client.nextOf("welcome");
  return { client, welcome };
}

/** Connects as `sub` with a token via the query string. */
export async function connectAs(
  ts: TestServer,
  sub: string,
  options: Omit<MintOptions, "sub"> = {},
): Promise<Client> {
  const t = await token(sub, options);
  return (await connect(`${ts.wsUrl}?token=${t}`)).client;
}

/** Joins a room and asserts `joined`. */
export async function join(client: Client, room: string): Promise<Msg> {
  const reply = await client.request({ type: "join", room, id: `j-${room}` });
  if (reply.type !== "joined") throw new Error(`join ${room} failed: ${JSON.stringify(reply)}`);
  return reply;
}

/**
 * Joins a room with a fresh request id, optionally recovering `since` a
 * position, and returns the `joined` reply (throws on anything else).
 */
export async function joinRoom(client: Client, room: string, since?: unknown): Promise<Msg> {
  const id = `j-${crypto.randomUUID()}`;
  const reply = await client.request(
    since === undefined ? { type: "join", room, id } : { type: "join", room, id, since },
  );
  if (reply.type !== "joined") throw new Error(`join ${room} failed: ${JSON.stringify(reply)}`);
  return reply;
}

/**
 * Collects a room's `message` frames as they arrive, in arrival order
 * (batched frames split), into the returned array.
 */
export function collectRoom(client: Client, room: string): Msg[] {
  const got: Msg[] = [];
  client.ws.addEventListener("message", (e) => {
    for (const line of String(e.data).split("\n")) {
      const m = JSON.parse(line) as Msg;
      if (m.type === "message" && m.room === room) got.push(m);
    }
  });
  return got;
}

/** The answer to a raw HTTP request: status line, headers, body. */
export interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * Sends a WebSocket handshake over a raw TCP socket and reads the answer, so
 * tests can see the status of refused upgrades (a WebSocket client only sees 1006).
 */
export async function rawHandshake(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const all: Record<string, string> = {
      host: `127.0.0.1:${port}`,
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16)))),
      "sec-websocket-version": "13",
      ...headers,
    };
    const head = `${method} ${path} HTTP/1.1\r\n` +
      Object.entries(all).filter(([, v]) => v !== "").map(([k, v]) => `${k}: ${v}\r\n`).join("") +
      "\r\n";
    await conn.write(new TextEncoder().encode(head));
    const buf = new Uint8Array(65536);
    let text = "";
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
      const end = text.indexOf("\r\n\r\n");
      if (end !== -1) {
        const lines = text.slice(0, end).split("\r\n");
        const status = Number(lines[0]!.split(" ")[1]);
        const h = new Headers();
        for (const line of lines.slice(1)) {
          const i = line.indexOf(":");
          h.append(line.slice(0, i).trim(), line.slice(i + 1).trim());
        }
        const length = Number(h.get("content-length") ?? "0");
        if (status === 101 || text.length >= end + 4 + length) {
          return { status, headers: h, body: text.slice(end + 4, end + 4 + length) };
        }
      }
    }
    throw new Error(`no complete response: ${text.slice(0, 200)}`);
  } finally {
    conn.close();
  }
}

/** A clock whose time moves only when told; timers fire on `advance`. */
export class FakeClock implements Clock {
  #now: number;
  #next = 1;
  #timers = new Map<number, { at: number; fn: () => void; every?: number }>();

  constructor(start = Date.now()) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  setTimeout(fn: () => void, ms: number): TimerId {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + ms, fn });
    return id as unknown as TimerId;
  }
  clearTimeout(id: TimerId): void {
    this.#timers.delete(id as unknown as number);
  }
  setInterval(fn: () => void, ms: number): TimerId {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + ms, fn, every: ms });
    return id as unknown as TimerId;
  }
  clearInterval(id: TimerId): void {
    this.#timers.delete(id as unknown as number);
  }
  /** Timers pending. */
  get pending(): number {
    return this.#timers.size;
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let dueId = -1;
      let due: { at: number; fn: () => void; every?: number } | undefined;
      for (const [id, t] of this.#timers) {
        if (t.at <= end && (due === undefined || t.at < due.at)) {
          due = t;
          dueId = id;
        }
      }
      if (due === undefined) break;
      this.#now = due.at;
      if (due.every !== undefined) due.at += due.every;
      else this.#timers.delete(dueId);
      due.fn();
    }
    this.#now = end;
  }
}

/** Resolves after `ms` milliseconds of real time. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A room policy file in a temporary directory, removed on dispose. */
export interface PolicyFile extends AsyncDisposable {
  /** The file, to pass as `ROOM_POLICY`. */
  readonly path: string;
}

/**
 * Writes `{ rooms }` as a `ROOM_POLICY` file in a fresh temporary directory.
 *
 * @example
 * ```ts ignore
 * await using policy = await writePolicy([{ room: "lobby", users: "*" }]);
 * await using ts = await startServer({ ROOM_POLICY: policy.path });
 * ```
 */
export async function writePolicy(rooms: z.input<typeof RoomRule>[]): Promise<PolicyFile> {
  const dir = await Deno.makeTempDir({ prefix: "policy-" });
  const path = `${dir}/policy.json`;
  await Deno.writeTextFile(path, JSON.stringify({ rooms }));
  return { path, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

/** Polls `check` until it is true or `timeoutMs` passes. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Opens a WebSocket over a raw TCP connection and returns the connection
 * after the 101, so a test can play a peer that stops reading or answering.
 */
export async function rawWebSocket(port: number, path: string): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const head = `GET ${path} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nupgrade: websocket\r\n` +
    `connection: Upgrade\r\nsec-websocket-key: ${key}\r\nsec-websocket-version: 13\r\n\r\n`;
  await conn.write(new TextEncoder().encode(head));
  // Read byte by byte up to the end of the response head, so no frame is consumed.
  const one = new Uint8Array(1);
  let text = "";
  while (!text.endsWith("\r\n\r\n")) {
    if (await conn.read(one) === null) throw new Error(`closed during handshake: ${text}`);
    text += String.fromCharCode(one[0]!);
  }
  if (!text.startsWith("HTTP/1.1 101")) {
    conn.close();
    throw new Error(`handshake refused: ${text.split("\r\n")[0]}`);
  }
  return conn;
}

/** Writes one masked text frame (as clients must) on a raw WebSocket connection. */
export async function sendRawText(conn: Deno.TcpConn, text: string): Promise<void> {
  const payload = new TextEncoder().encode(text);
  if (payload.length > 125) throw new RangeError("sendRawText only writes short frames");
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const frame = new Uint8Array(2 + 4 + payload.length);
  frame[0] = 0x81;
  frame[1] = 0x80 | payload.length;
  frame.set(mask, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i]! ^ mask[i % 4]!;
  await conn.write(frame);
}
