/**
 * A TCP proxy that a test can cut: for clients whose network fails under
 * them, not sockets closed politely. `cut()` resets every connection at once
 * (the peer sees 1006); `blackhole()` keeps them open but stops forwarding one
 * or both directions, as a dead Wi-Fi link does, so only timeouts notice.
 *
 * @module
 */

/** Which way bytes stop flowing under {@linkcode CuttableProxy.blackhole}. */
export type Direction = "both" | "to_client" | "to_server";

interface Link {
  client: Deno.TcpConn;
  server: Deno.TcpConn;
}

/** Forwards `127.0.0.1:<port>` to a target port until closed (or disposed). */
export class CuttableProxy implements AsyncDisposable {
  readonly port: number;
  readonly #target: number;
  readonly #listener: Deno.TcpListener;
  readonly #links = new Set<Link>();
  readonly #tasks = new Set<Promise<void>>();
  #drop: Direction | null = null;
  #closed = false;
  readonly #accepting: Promise<void>;

  /** @param targetPort where connections go */
  constructor(targetPort: number) {
    this.#target = targetPort;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = this.#listener.addr.port;
    this.#accepting = this.#accept();
  }

  /** `ws://127.0.0.1:<port>/ws` */
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** Connections open through the proxy. */
  get links(): number {
    return this.#links.size;
  }

  /** Resets every open connection; new ones are accepted as before. */
  cut(): void {
    for (const link of this.#links) this.#close(link);
  }

  /** Silently drops bytes in `direction` from now on (new connections too), until `heal()`. */
  blackhole(direction: Direction = "both"): void {
    this.#drop = direction;
  }

  /** Forwards everything again. */
  heal(): void {
    this.#drop = null;
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    this.cut();
    await this.#accepting;
    await Promise.all(this.#tasks);
  }

  /** Closes the proxy; see {@linkcode CuttableProxy.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #accept(): Promise<void> {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
      } catch {
        return; // closed
      }
      let server: Deno.TcpConn;
      try {
        server = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
      } catch {
        client.close();
        continue;
      }
      const link = { client, server };
      this.#links.add(link);
      this.#track(this.#pipe(link, client, server, "to_server"));
      this.#track(this.#pipe(link, server, client, "to_client"));
    }
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  async #pipe(link: Link, from: Deno.TcpConn, to: Deno.TcpConn, way: Direction): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        if (this.#drop === "both" || this.#drop === way) continue;
        for (let written = 0; written < n;) {
          written += await to.write(buffer.subarray(written, n));
        }
      }
    } catch {
      // Reset or closed under us: that is what cut() is for.
    }
    this.#close(link);
  }

  #close(link: Link): void {
    if (!this.#links.delete(link)) return;
    for (const conn of [link.client, link.server]) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }
}
