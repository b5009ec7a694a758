/**
 * The front door: a `node:http` (or `node:https`) server that owns every TCP
 * connection from accept to close, so that the runtime's defaults cannot take
 * the process down (docs/upstream/):
 *
 * - every accepted socket is counted, and the count is kept below the
 *   process's file-descriptor limit (`maxSockets`): past it a new connection
 *   gets a plain 503 and is closed at once, so accept never meets EMFILE
 *   (which ends a `Deno.serve` process);
 * - a connection must finish its request head within `headersTimeoutMs`
 *   (and an idle keep-alive connection send its next one within it), else it
 *   is closed: `Deno.serve` has no such deadline;
 * - near the cap, the oldest connections still sending their head are shed
 *   first, so a slow-header flood cannot keep real clients out;
 * - upgrades are handed to a {@linkcode SocketEngine}, by default one that
 *   bounds whole messages.
 *
 * Requests are adapted to the fetch API, so the core's handler is the same
 * one `Deno.serve` calls.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import http from "node:http";
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { Readable } from "node:stream";
import type { Duplex } from "node:stream";
import type { SocketEngine } from "./engines.ts";
import type { Upgrader } from "./types.ts";
import { type EdgeStats, SocketLedger } from "./socket_ledger.ts";

/** The core's fetch handler, with the upgrade the front door performs. */
export type EdgeHandler = (
  req: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  upgrade?: Upgrader,
) => Response | Promise<Response>;

export type { EdgeStats } from "./socket_ledger.ts";

/** Options for {@linkcode serveNode}. */
export interface NodeServeOptions {
  port: number;
  hostname: string;
  /** Share the port with other workers (SO_REUSEPORT, Linux). @default false */
  reusePort?: boolean;
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: string; key: string };
  /** Most TCP connections open at once; keep it below the fd limit. */
  maxSockets: number;
  /** Time to finish a request head, and the keep-alive idle time. */
  headersTimeoutMs: number;
  engine: SocketEngine;
  onListen?: (addr: Deno.NetAddr) => void;
}

/** A running front door. */
export interface NodeServer {
  readonly addr: Deno.NetAddr;
  stats(): EdgeStats;
  /** Stops accepting and closes idle connections; open WebSockets are the core's to close. */
  shutdown(): Promise<void>;
}

/**
 * The TCP socket under a request's socket: with TLS, `node:https` wraps the
 * accepted socket in a TLSSocket whose `_parent` it is (Deno's node:tls,
 * like Node's). Counting and deadlines are kept on the TCP socket, so a
 * client that never finishes its TLS handshake is timed out as well.
 */
function tcpOf(socket: Duplex): Socket {
  return (socket as Duplex & { _parent?: Socket })._parent ?? socket as Socket;
}

function netAddr(address: string | undefined, port: number | undefined): Deno.NetAddr {
  // IPv4 clients of a dual-stack listener appear as ::ffff:a.b.c.d.
  const hostname = address?.startsWith("::ffff:") ? address.slice(7) : address ?? "";
  return { transport: "tcp", hostname, port: port ?? 0 };
}

function toRequest(req: IncomingMessage, scheme: string, body: boolean): Request {
  // Pairs, not a Headers object: Request would convert (copy) that a second
  // time, a third of a handshake's garbage and ~10 µs of its CPU.
  const headers: [string, string][] = [];
  const hosts: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    headers.push([name, value]);
    if (name.length === 4 && name.toLowerCase() === "host") hosts.push(value);
  }
  // As Headers.get would read it: repeated values joined (and then refused by URL).
  const host = hosts.length > 0 ? hosts.join(", ") : "localhost";
  const url = new URL(req.url ?? "/", `${scheme}://${host}`);
  const method = req.method ?? "GET";
  const hasBody = body && method !== "GET" && method !== "HEAD";
  return new Request(url, {
    method,
    headers,
    ...(hasBody
      ? { body: Readable.toWeb(req) as ReadableStream<Uint8Array>, duplex: "half" as const }
      : {}),
  });
}

async function writeResponse(res: ServerResponse, response: Response, head: boolean) {
  const headers: string[] = [];
  response.headers.forEach((value, name) => headers.push(name, value));
  for (const cookie of response.headers.getSetCookie()) headers.push("set-cookie", cookie);
  res.writeHead(response.status, response.statusText, headers);
  if (response.body === null || head) {
    res.end();
    await response.body?.cancel();
    return;
  }
  for await (const chunk of response.body) {
    if (!res.write(chunk)) await new Promise((resolve) => res.once("drain", resolve));
    if (res.destroyed) break;
  }
  res.end();
}

/** Writes a plain HTTP response on a socket that has not been upgraded, then closes it. */
async function refuseOnSocket(socket: Duplex, response: Response): Promise<void> {
  const body = new Uint8Array(await response.arrayBuffer());
  const lines = [`HTTP/1.1 ${response.status} ${response.statusText || "Refused"}`];
  response.headers.forEach((value, name) => lines.push(`${name}: ${value}`));
  lines.push(`content-length: ${body.byteLength}`, "connection: close", "", "");
  if (socket.destroyed) return;
  socket.end(Buffer.concat([Buffer.from(lines.join("\r\n")), body]));
}

const BUSY = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n" +
  "retry-after: 5\r\ncontent-length: 17\r\nconnection: close\r\n\r\nserver too busy\r\n";

/**
 * Serves `handler` on a `node:http` server with the protections above.
 *
 * @example
 * ```ts ignore
 * const edge = serveNode(server.handler, { port: 0, hostname: "127.0.0.1", maxSockets: 1000,
 *   headersTimeoutMs: 10_000, engine: createEngine("ws", { maxMessageBytes: 65536, heartbeatMs: 30_000 }) });
 * ```
 */
export async function serveNode(
  handler: EdgeHandler,
  options: NodeServeOptions,
): Promise<NodeServer> {
  const ledger = new SocketLedger(options.maxSockets, options.headersTimeoutMs);
  const door: Door = {
    handler,
    ledger,
    engine: options.engine,
    scheme: options.tls ? "https" : "http",
  };
  const server = options.tls
    ? https.createServer({ cert: options.tls.cert, key: options.tls.key })
    : http.createServer();
  // Every TCP connection, before any TLS handshake: "secureConnection" would
  // miss one that never completes it.
  server.on("connection", (socket: Socket) => {
    // An 'error' with no listener would throw out of the event loop.
    socket.on("error", () => {});
    if (!ledger.admit(socket)) {
      socket.end(BUSY);
      socket.destroy();
    }
  });
  server.on("clientError", refuseUnparsable);
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const socket = tcpOf(req.socket);
    ledger.headDone(socket);
    res.once("finish", () => {
      if (!socket.destroyed) ledger.awaitHead(socket);
    });
    void respond(door, req, res);
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    ledger.headDone(tcpOf(socket));
    void upgrade(door, req, socket, head);
  });
  const addr = await listenOn(server, options);
  options.onListen?.(addr);
  return {
    addr,
    stats: () => ({ ...ledger.stats }),
    shutdown: () =>
      new Promise<void>((done) => {
        ledger.dropWaiting();
        server.close(() => done());
        server.closeIdleConnections?.();
        options.engine.close();
      }),
  };
}

/** What the request and upgrade paths share. */
interface Door {
  handler: EdgeHandler;
  ledger: SocketLedger;
  engine: SocketEngine;
  scheme: string;
}

/** A request head node:http cannot parse; past 16 KiB (its max header size) it is a 431. */
function refuseUnparsable(err: Error & { code?: string }, socket: Duplex): void {
  if (socket.destroyed || !socket.writable) return;
  const status = err.code === "HPE_HEADER_OVERFLOW"
    ? "431 Request Header Fields Too Large"
    : "400 Bad Request";
  socket.end(`HTTP/1.1 ${status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
}

async function respond(door: Door, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let request: Request;
  try {
    request = toRequest(req, door.scheme, true);
  } catch {
    res.writeHead(400, { "content-type": "text/plain", connection: "close" });
    res.end("bad request\n");
    return;
  }
  const info = {
    remoteAddr: netAddr(req.socket.remoteAddress, req.socket.remotePort),
    completed: new Promise<void>((resolve) => res.once("close", resolve)),
  };
  try {
    await writeResponse(res, await door.handler(request, info), req.method === "HEAD");
  } catch {
    res.destroy();
  }
}

async function upgrade(
  door: Door,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  let request: Request;
  try {
    request = toRequest(req, door.scheme, false);
  } catch {
    socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    return;
  }
  const tcp = tcpOf(socket);
  const raw = { req, socket, head: new Uint8Array(head), release: () => door.ledger.release(tcp) };
  const info = {
    remoteAddr: netAddr(req.socket.remoteAddress, req.socket.remotePort),
    completed: new Promise<void>((resolve) => socket.once("close", resolve)),
  };
  let upgraded = false;
  const upgrader: Upgrader = (r, upgradeOptions) => {
    const result = door.engine.upgrade(r, raw, upgradeOptions);
    upgraded = true;
    return result;
  };
  try {
    const response = await door.handler(request, info, upgrader);
    if (!upgraded) await refuseOnSocket(socket, response);
  } catch {
    socket.destroy();
  }
}

function listenOn(
  server: http.Server,
  options: Pick<NodeServeOptions, "port" | "hostname" | "reusePort">,
): Promise<Deno.NetAddr> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({
      port: options.port,
      host: options.hostname,
      ...(options.reusePort ? { reusePort: true } : {}),
    }, () => {
      server.off("error", reject);
      const address = server.address();
      resolve(
        typeof address === "object" && address !== null
          ? { transport: "tcp", hostname: address.address, port: address.port }
          : { transport: "tcp", hostname: options.hostname, port: options.port },
      );
    });
  });
}
