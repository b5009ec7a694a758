/**
 * The servers under test and their lifetimes: each runs as its own
 * subprocess on a fresh loopback port, is ready when GET /healthz answers 200,
 * and is stopped (SIGTERM, then SIGKILL) on every path.
 *
 * @module
 */
import { findBun } from "./_bun_peer.ts";
import { BENCH_HS256_SECRET } from "./_tokens.ts";

/** Ids of the servers compared. */
export type ServerId = "ours" | "bare_deno" | "bun" | "node_ws" | "socketio";

/** Every server id, in report order. */
export const SERVER_IDS: readonly ServerId[] = ["ours", "bare_deno", "bun", "node_ws", "socketio"];

/** How the generator talks to a server. */
export type ClientKind = "ws" | "socketio";

/** A server under test. */
export interface ServerSpec {
  id: ServerId;
  /** Row label in the report. */
  label: string;
  client: ClientKind;
}

/** The servers under test, by id. */
export const SERVERS: Readonly<Record<ServerId, ServerSpec>> = {
  ours: { id: "ours", label: "ours (JWT+zod+rate limit+audit)", client: "ws" },
  bare_deno: { id: "bare_deno", label: "bare Deno", client: "ws" },
  bun: { id: "bun", label: "Bun 1.x (server.publish)", client: "ws" },
  node_ws: { id: "node_ws", label: "Node ws 8", client: "ws" },
  socketio: { id: "socketio", label: "Socket.IO 4 (socket.io-client)", client: "socketio" },
};

/** Repository root (the folder holding main.ts and deno.json). */
export const REPO_ROOT = new URL("../", import.meta.url).pathname;
const BENCH_DIR = new URL("./", import.meta.url).pathname;

/** A server could not be started; the message says why, for the report row. */
export class ServerUnavailableError extends Error {
  override name = "ServerUnavailableError";
}

/** Options for {@linkcode startServer}. */
export interface StartOptions {
  /** Heartbeat interval, for every server (ours: HEARTBEAT_MS, ≥ 1000). @default 30000 */
  heartbeatMs?: number;
  /** Run ours with ES256 verification against this SPKI PEM instead of HS256. */
  es256PublicKeyPem?: string;
  /** @default 30000 */
  readyTimeoutMs?: number;
  /**
   * Ours only. `run`: `deno run main.ts`, one isolate. `parallel`: the
   * `scripts/serve_parallel.ts` launcher (workers on one port), pinned to
   * two isolates so the figure means the same on any machine. The started
   * server's `pid` is then the launcher's: not a source of CPU figures.
   * @default "run"
   */
  launch?: "run" | "parallel";
  /** Ours only: variables added to its environment (bus selection). @default {} */
  env?: Record<string, string>;
}

/** A started server. */
export interface RunningServer {
  spec: ServerSpec;
  pid: number;
  port: number;
  /** URL a plain WebSocket client connects to (ours reads `token`, bare servers ignore it). */
  wsUrl(token?: string): string;
  /** Origin a Socket.IO client connects to. */
  httpUrl: string;
  /** Last lines the server printed, for failure messages. */
  logTail(): string;
  /** True once the process has exited. */
  readonly exited: boolean;
  close(): Promise<void>;
}

const running = new Set<RunningServer>();

/** Stops every server still running (on Ctrl-C or a crash of the orchestrator). */
export async function closeAllServers(): Promise<void> {
  await Promise.all([...running].map((s) => s.close()));
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

function commandFor(
  spec: ServerSpec,
  port: number,
  options: StartOptions,
  bunPath: string,
): { cmd: string; args: string[]; env: Record<string, string>; processGroup: boolean } {
  const heartbeat = String(options.heartbeatMs ?? 30_000);
  const base = { PORT: String(port), HOSTNAME: "127.0.0.1" };
  switch (spec.id) {
    case "ours": {
      const auth: Record<string, string> = options.es256PublicKeyPem
        ? { JWT_PUBLIC_KEY: options.es256PublicKeyPem, JWT_ALGORITHMS: "ES256" }
        : { JWT_SECRET: BENCH_HS256_SECRET };
      const parallel = options.launch === "parallel";
      return {
        cmd: Deno.execPath(),
        args: ["run", "-A", parallel ? "scripts/serve_parallel.ts" : "main.ts"],
        // The launcher spawns `deno serve`: a SIGKILL fallback must reach it too.
        processGroup: parallel,
        env: {
          ...base,
          ...auth,
          ...(parallel ? { DENO_JOBS: "2" } : {}),
          // High enough never to trigger: the bench measures the limiter's
          // cost, not its refusals.
          RATE_LIMIT_CAPACITY: "1000000",
          RATE_LIMIT_REFILL_PER_SEC: "1000000",
          HANDSHAKES_PER_MINUTE_PER_IP: "100000000",
          MAX_CONNECTIONS: "20000",
          MAX_CONNECTIONS_PER_USER: "20000",
          ALLOWED_ORIGINS: "*",
          LOG_LEVEL: "info",
          HEARTBEAT_MS: heartbeat,
          // Connections are gone by the time we stop it; don't wait 10 s for stragglers.
          SHUTDOWN_GRACE_MS: "1000",
          ...options.env,
        },
      };
    }
    case "bare_deno":
      return {
        cmd: Deno.execPath(),
        args: ["run", "--allow-net", "--allow-env", `${BENCH_DIR}servers/bare_deno.ts`],
        env: { ...base, HEARTBEAT_INTERVAL_MS: heartbeat },
        processGroup: false,
      };
    case "bun":
      return {
        cmd: bunPath,
        args: [`${BENCH_DIR}servers/bun_server.ts`],
        env: { ...base, HEARTBEAT_INTERVAL_MS: heartbeat },
        processGroup: false,
      };
    case "node_ws":
      return {
        cmd: "node",
        args: [`${BENCH_DIR}node/node_ws.mjs`],
        env: { ...base, HEARTBEAT_INTERVAL_MS: heartbeat },
        processGroup: false,
      };
    case "socketio":
      return {
        cmd: "node",
        args: [`${BENCH_DIR}node/socketio.mjs`],
        env: { ...base, HEARTBEAT_INTERVAL_MS: heartbeat },
        processGroup: false,
      };
  }
}

/** Absolute path of `name` on PATH, if any. */
export async function findOnPath(name: string): Promise<string | undefined> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir !== "" && await exists(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return undefined;
}

/**
 * The same running server, seen by a client that adds `query` to its
 * WebSocket URL (`?batch=1`): one process, two ways of talking to it.
 */
export function withClientQuery(
  server: RunningServer,
  query: Record<string, string>,
): RunningServer {
  const extra = new URLSearchParams(query).toString();
  return {
    spec: server.spec,
    pid: server.pid,
    port: server.port,
    httpUrl: server.httpUrl,
    wsUrl: (token) => {
      const url = server.wsUrl(token);
      return `${url}${url.includes("?") ? "&" : "?"}${extra}`;
    },
    logTail: () => server.logTail(),
    get exited() {
      return server.exited;
    },
    close: () => server.close(),
  };
}

/** Why a server cannot start on this checkout, or undefined when it can. */
export async function unavailableReason(id: ServerId): Promise<string | undefined> {
  if (id === "ours" && !(await exists(`${REPO_ROOT}main.ts`))) {
    return "main.ts not found: ours cannot start until the server entry point exists";
  }
  if ((id === "node_ws" || id === "socketio") && !(await exists(`${BENCH_DIR}node/node_modules`))) {
    return "bench/node/node_modules missing: run `npm ci --prefix bench/node`";
  }
  if (id === "bun") {
    const bun = await findBun();
    if (typeof bun === "string") return bun;
  }
  return undefined;
}

/**
 * Starts a server and waits until GET /healthz answers 200.
 * Throws {@linkcode ServerUnavailableError} with the server's last output on failure.
 */
export async function startServer(
  spec: ServerSpec,
  options: StartOptions = {},
): Promise<RunningServer> {
  const reason = await unavailableReason(spec.id);
  if (reason) throw new ServerUnavailableError(reason);
  const { readyTimeoutMs = 30_000 } = options;
  const port = freePort();
  const bun = spec.id === "bun" ? await findBun() : undefined;
  const bunPath = bun === undefined || typeof bun === "string" ? "bun" : bun.path;
  const { cmd, args, env, processGroup } = commandFor(spec, port, options, bunPath);
  const setsid = processGroup ? await findOnPath("setsid") : undefined;
  const child = new Deno.Command(setsid ?? cmd, {
    args: setsid === undefined ? args : [cmd, ...args],
    cwd: REPO_ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  // Output must be drained or a chatty server (audit log at info) blocks on a
  // full pipe; only the tail is kept, for error messages.
  let tail = "";
  const keep = (text: string) => {
    tail = (tail + text).slice(-4000);
  };
  const drain = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: keep }),
    ).catch(() => {});
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });

  let closing: Promise<void> | undefined;
  const server: RunningServer = {
    spec,
    pid: child.pid,
    port,
    httpUrl: `http://127.0.0.1:${port}`,
    wsUrl: (token) =>
      `ws://127.0.0.1:${port}/ws${
        token === undefined ? "" : `?token=${encodeURIComponent(token)}`
      }`,
    logTail: () => tail.trim().split("\n").slice(-12).join("\n"),
    get exited() {
      return exited;
    },
    close() {
      closing ??= (async () => {
        if (!exited) {
          try {
            child.kill("SIGTERM");
          } catch { /* already gone */ }
          const timer = setTimeout(() => {
            try {
              // `setsid`, run by a non-leader, execs in place: the group id is the child's pid.
              if (setsid !== undefined) Deno.kill(-child.pid, "SIGKILL");
              else child.kill("SIGKILL");
            } catch { /* already gone */ }
          }, 3000);
          await status;
          clearTimeout(timer);
        }
        await drained;
        running.delete(server);
      })();
      return closing;
    },
  };
  running.add(server);

  const deadline = Date.now() + readyTimeoutMs;
  while (true) {
    if (exited) {
      await server.close();
      throw new ServerUnavailableError(
        `${spec.label} exited with code ${
          (await status).code
        } before it was ready:\n${server.logTail()}`,
      );
    }
    try {
      const res = await fetch(`${server.httpUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.status === 200) return server;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      await server.close();
      throw new ServerUnavailableError(
        `${spec.label} not ready after ${readyTimeoutMs} ms:\n${server.logTail()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
