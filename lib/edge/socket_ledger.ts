/**
 * The front door's book of TCP connections: how many are open, which are
 * still sending a request head (each with its deadline), and which to
 * refuse or shed near the cap. Kept on the TCP socket, under TLS too.
 *
 * @module
 */
import type { Socket } from "node:net";

/** Counters of what the front door refused or cut, for metrics and tests. */
export interface EdgeStats {
  /** TCP connections open now (requests, keep-alive and WebSockets). */
  sockets: number;
  /** Connections refused at accept because `maxSockets` were open. */
  refused: number;
  /** Connections closed for not finishing a request head in time. */
  headTimeouts: number;
  /** Connections still sending their head closed to make room near the cap. */
  shed: number;
}

/** Near the cap, connections still sending their head are shed first. */
const SHED_FRACTION = 0.9;

/** Open sockets, their head deadlines, refusals and shedding. */
export class SocketLedger {
  readonly stats: EdgeStats = { sockets: 0, refused: 0, headTimeouts: 0, shed: 0 };
  /** Sockets waiting for a request head, oldest first, with their deadline timers. */
  readonly #waiting = new Map<Socket, ReturnType<typeof setTimeout>>();
  /** Sockets in `stats.sockets`: each leaves once, by its close or by the engine that took it over. */
  readonly #counted = new Set<Socket>();
  readonly #maxSockets: number;
  readonly #shedAt: number;
  readonly #headersTimeoutMs: number;

  /**
   * @param maxSockets most connections open at once
   * @param headersTimeoutMs time to finish a request head (and keep-alive idle time)
   */
  constructor(maxSockets: number, headersTimeoutMs: number) {
    this.#maxSockets = maxSockets;
    this.#shedAt = Math.max(1, Math.floor(maxSockets * SHED_FRACTION));
    this.#headersTimeoutMs = headersTimeoutMs;
  }

  /**
   * A new connection: false when the cap is reached (the caller refuses it);
   * else counted, its head deadline started, and near the cap the oldest
   * connection still sending its head is closed to make room.
   */
  admit(socket: Socket): boolean {
    if (this.stats.sockets >= this.#maxSockets) {
      this.stats.refused++;
      return false;
    }
    this.stats.sockets++;
    this.#counted.add(socket);
    socket.once("close", () => this.release(socket));
    if (this.stats.sockets >= this.#shedAt) {
      const oldest = this.#waiting.keys().next().value;
      if (oldest !== undefined) {
        this.headDone(oldest);
        this.stats.shed++;
        oldest.destroy();
      }
    }
    this.awaitHead(socket);
    return true;
  }

  /** Starts (or restarts, for keep-alive) the deadline for the socket's next request head. */
  awaitHead(socket: Socket): void {
    this.headDone(socket);
    this.#waiting.set(
      socket,
      setTimeout(() => {
        this.#waiting.delete(socket);
        this.stats.headTimeouts++;
        socket.destroy();
      }, this.#headersTimeoutMs),
    );
  }

  /** The socket's request head is complete (or it is gone). */
  headDone(socket: Socket): void {
    clearTimeout(this.#waiting.get(socket));
    this.#waiting.delete(socket);
  }

  /** The connection is gone. Idempotent. */
  release(socket: Socket): void {
    this.headDone(socket);
    if (this.#counted.delete(socket)) this.stats.sockets--;
  }

  /** Closes every connection still sending a head (shutdown). */
  dropWaiting(): void {
    for (const socket of [...this.#waiting.keys()]) {
      this.headDone(socket);
      socket.destroy();
    }
  }
}
