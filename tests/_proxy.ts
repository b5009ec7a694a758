/**
 * A TCP proxy that a test can cut: for clients whose network fails under
 * them, not sockets closed politely. `cut()` resets every connection at once
 * (the peer sees 1006); `blackhole()` keeps them open but stops forwarding one
 * or both directions, as a dead Wi-Fi link does, so only timeouts notice.
 *
 * Also starts a real proxy binary (nginx, HAProxy) from a shipped
 * configuration ({@linkcode startProxyProcess}), finds it or decides to skip
 * ({@linkcode findProxyBinary}), and measures how long it keeps an unfinished
 * request head open ({@linkcode halfRequestOpenMs}).
 *
 * @module
 */
import { findOnPath } from "./_process.ts";
import { sleep } from "./_helpers.ts";

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

/** Where a proxy binary is, and whether its tests are skipped. */
export interface ProxyBinary {
  /** Absolute path, if installed. */
  readonly path: string | undefined;
  /** True when it is missing and `CI` is unset: with `CI` set a missing proxy fails its test. */
  readonly skip: boolean;
}

/**
 * Finds `name` on PATH or in /usr/sbin (Debian installs nginx and haproxy
 * there), and warns once when its tests will be skipped.
 */
export function findProxyBinary(name: string, apt: string = name): ProxyBinary {
  const path = findOnPath(name) ?? findOnPath(name, "/usr/sbin");
  const skip = path === undefined && (Deno.env.get("CI") ?? "") === "";
  if (skip) {
    console.warn(`Skipping the ${name} test: ${name} is not installed (apt-get install ${apt}).`);
  }
  return { path, skip };
}

/** Options for {@linkcode startProxyProcess}. */
export interface ProxyProcessOptions {
  /** The port the configuration listens on, on 127.0.0.1; polled until it accepts. */
  listen: number;
  /** Files written into a fresh temporary directory before start, by name. */
  files: Record<string, string>;
  /** Arguments, given that directory. */
  args: (dir: string) => string[];
  /** @default {10000} */
  readyTimeoutMs?: number;
}

/** A proxy process started by {@linkcode startProxyProcess}; `await using` stops it. */
export interface ProxyProcess extends AsyncDisposable {
  /** Its temporary directory (configuration, pid and log files). */
  readonly dir: string;
  /** What it wrote to stderr so far. */
  output(): string;
  /** SIGTERM, then waits for it to exit and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs a proxy binary in the foreground with its configuration in a temporary
 * directory, and resolves once `127.0.0.1:<listen>` accepts connections.
 * Rejects, with the process stopped and its stderr in the message, when it
 * exits or does not listen in time. `path` undefined (not installed) rejects
 * too: callers skip before calling unless `CI` is set.
 */
export async function startProxyProcess(
  path: string | undefined,
  options: ProxyProcessOptions,
): Promise<ProxyProcess> {
  const { listen, files, args, readyTimeoutMs = 10_000 } = options;
  if (path === undefined) throw new Error("CI is set but the proxy is not installed");
  const dir = await Deno.makeTempDir({ prefix: "proxy-" });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  const child = new Deno.Command(path, { args: args(dir), stdout: "null", stderr: "piped" })
    .spawn();
  let stderr = "";
  const reading = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (stderr = (stderr + chunk).slice(-16_384)) }),
  ).catch(() => {});
  let exited = false;
  const status = child.status.finally(() => exited = true);
  let stopping: Promise<void> | undefined;
  const proxy: ProxyProcess = {
    dir,
    output: () => stderr,
    stop() {
      stopping ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch {
          // Already exited.
        }
        await status;
        await reading;
        await Deno.remove(dir, { recursive: true });
      })();
      return stopping;
    },
    [Symbol.asyncDispose]: () => proxy.stop(),
  };
  const deadline = performance.now() + readyTimeoutMs;
  while (!exited && performance.now() < deadline) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port: listen })).close();
      return proxy;
    } catch {
      await sleep(50);
    }
  }
  await proxy.stop();
  throw new Error(`${path} did not listen on ${listen}:\n${stderr}`);
}

/**
 * Sends half a request head to `127.0.0.1:<port>`, then nothing, and
 * resolves with how long the other side took to close the connection and
 * what it answered first (nginx closes silently, HAProxy answers 408). Gives
 * up after `giveUpMs`, resolving with at least that.
 */
export async function halfRequestOpenMs(
  port: number,
  giveUpMs = 60_000,
): Promise<{ ms: number; reply: string }> {
  const half = await Deno.connect({ hostname: "127.0.0.1", port });
  await half.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
  const started = performance.now();
  const buf = new Uint8Array(1024);
  const decoder = new TextDecoder();
  let reply = "";
  const timer = setTimeout(() => half.close(), giveUpMs);
  try {
    for (;;) {
      const n = await half.read(buf);
      if (n === null) break;
      reply += decoder.decode(buf.subarray(0, n), { stream: true });
    }
  } catch {
    // Closed by the timer (the elapsed time says so) or reset by the proxy.
  } finally {
    clearTimeout(timer);
  }
  const ms = performance.now() - started;
  try {
    half.close();
  } catch {
    // Already closed.
  }
  return { ms, reply };
}
