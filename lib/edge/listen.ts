/**
 * Opens the listener for `deno task start` (and each worker of
 * `start:parallel`): the node front door by default, `Deno.serve` with
 * `HTTP_SERVER=deno`. Both call the same fetch handler; only the node front
 * door bounds sockets, request heads and whole WebSocket messages.
 *
 * @module
 */
import type { EdgeConfig } from "../config.ts";
import type { TlsMaterial } from "./tls.ts";
import { createEngine } from "./engines.ts";
import { type SocketBudget, socketBudget } from "./fd_budget.ts";
import { type EdgeHandler, type EdgeStats, serveNode } from "./node_server.ts";

/** A listener, whichever server runs it. */
export interface Listener {
  readonly addr: Deno.NetAddr;
  /** The front door's counters; `undefined` under `Deno.serve`. */
  readonly stats: (() => EdgeStats) | undefined;
  /** Stops accepting; resolves when open HTTP requests have finished. */
  shutdown(): Promise<void>;
}

/** What {@linkcode listen} needs besides the handler. */
export interface ListenOptions {
  /** Where to listen, and with what (`server.edge`). */
  config: { port: number; hostname: string; reusePort: boolean; edge: EdgeConfig };
  tls: TlsMaterial | undefined;
  /** The socket cap of this isolate (see {@linkcode connectionBudget}). */
  budget: SocketBudget;
  /** Largest incoming WebSocket message (`MAX_MESSAGE_BYTES`). */
  maxMessageBytes: number;
  onListen: (addr: Deno.NetAddr) => void;
}

/**
 * Sockets kept for plain HTTP (tickets, API, health) above the WebSocket
 * limit, so a full house of WebSockets still lets `/healthz` in.
 */
export function httpHeadroom(maxConnections: number): number {
  return Math.max(64, Math.ceil(maxConnections * 0.1));
}

/**
 * The socket cap of one isolate and the `MAX_CONNECTIONS` that fits in it:
 * WebSockets may take at most 90% of the sockets (the rest serve HTTP and
 * are where shedding starts). `clamped` is set when the fd limit forced a
 * lower `MAX_CONNECTIONS` than configured: main.ts warns about it.
 */
export function connectionBudget(
  maxConnections: number,
  isolates: number,
  fdLimit?: number,
): SocketBudget & { maxConnections: number; clamped: boolean } {
  const budget = socketBudget(maxConnections + httpHeadroom(maxConnections), isolates, fdLimit);
  // Only the fd limit lowers MAX_CONNECTIONS: the headroom above it is ours to add.
  const usable = socketBudget(Number.MAX_SAFE_INTEGER, isolates, budget.fdLimit).maxSockets;
  const fits = Math.max(1, Math.floor(usable * 0.9));
  return {
    ...budget,
    maxConnections: Math.min(maxConnections, fits),
    clamped: maxConnections > fits,
  };
}

/** Listens with the configured server; rejects when the port or the TLS material cannot be used. */
export async function listen(handler: EdgeHandler, options: ListenOptions): Promise<Listener> {
  const { config, tls } = options;
  if (config.edge.httpServer === "node") {
    const server = await serveNode(handler, {
      port: config.port,
      hostname: config.hostname,
      reusePort: config.reusePort,
      ...(tls === undefined ? {} : { tls }),
      maxSockets: options.budget.maxSockets,
      headersTimeoutMs: config.edge.headersTimeoutMs,
      engine: createEngine(config.edge.wsEngine, { maxMessageBytes: options.maxMessageBytes }),
      onListen: options.onListen,
    });
    return { addr: server.addr, stats: server.stats, shutdown: server.shutdown };
  }
  const server = Deno.serve({
    port: config.port,
    hostname: config.hostname,
    // Several workers share the port (start:parallel; Linux).
    ...(config.reusePort ? { reusePort: true } : {}),
    ...(tls ?? {}),
    onListen: (addr) => options.onListen(addr as Deno.NetAddr),
  }, (req, info) => handler(req, info));
  return {
    addr: server.addr as Deno.NetAddr,
    stats: undefined,
    shutdown: () => server.shutdown(),
  };
}
