/**
 * A server in a subprocess, for tests that need what one process cannot give:
 * several isolates (`deno serve --parallel`) or several processes on one bus.
 * Spawns a command with an environment, waits until an HTTP readiness path
 * answers 200, keeps its output for failure messages, and stops it with
 * SIGTERM (SIGKILL if it lingers), awaiting its exit and its output streams so
 * that Deno's leak sanitizers stay quiet.
 *
 * @module
 */

/** Options for {@linkcode spawnServer}. */
export interface SpawnServerOptions {
  /** Variables added to the inherited environment. */
  env?: Record<string, string>;
  /** Working directory. @default the repository root */
  cwd?: string;
  /** Port the server is told to listen on (through `env` or `args`), on 127.0.0.1. */
  port: number;
  /**
   * Path polled until it answers 200. Polled rather than matched in the output
   * because launchers such as `deno serve` print their own "Listening" line.
   *
   * @default {"/healthz"}
   */
  readyPath?: string;
  /** @default {20000} */
  readyTimeoutMs?: number;
  /**
   * How long `stop()` waits after SIGTERM before sending SIGKILL.
   *
   * @default {5000}
   */
  stopTimeoutMs?: number;
  /**
   * Starts the command in a process group of its own (through `setsid`, when
   * on PATH), so that the SIGKILL fallback reaches every process it started.
   * Needed for launchers such as `scripts/serve_parallel.ts`: killing only the
   * launcher would leave the server it spawned running, holding the port and
   * our output pipes. SIGTERM still goes to the launcher alone, as a service
   * manager would send it.
   *
   * @default {false}
   */
  processGroup?: boolean;
  /**
   * Runs the server with this many open files at most (soft and hard), through
   * util-linux `prlimit`: the fd limit as an operator's `ulimit -n` would set it.
   */
  openFiles?: number;
  /**
   * The server serves TLS with a certificate this CA (PEM) vouches for:
   * `httpUrl`/`wsUrl` become `https://`/`wss://` and readiness is polled
   * over TLS trusting it.
   */
  caCert?: string;
}

/**
 * A running server subprocess. Disposable: `await using server = await
 * spawnServer(...)` stops it when the scope ends.
 */
export interface ServerProcess extends AsyncDisposable {
  readonly port: number;
  /** The process id (of the launcher, for launchers). */
  readonly pid: number;
  /** `http://127.0.0.1:<port>` */
  readonly httpUrl: string;
  /** `ws://127.0.0.1:<port>/ws` */
  readonly wsUrl: string;
  /** Everything the process wrote to stdout and stderr so far (tail only). */
  output(): string;
  /** Resolves with the exit status once the process exits, whoever ended it. */
  readonly exited: Promise<Deno.CommandStatus>;
  /**
   * SIGTERM, then SIGKILL after `stopTimeoutMs`; resolves with the exit status
   * once the process and its output streams are done. Idempotent.
   */
  stop(): Promise<Deno.CommandStatus>;
}

/** Output kept for error messages; older text is discarded. */
const MAX_OUTPUT_CHARS = 64 * 1024;
const REPO_ROOT = new URL("..", import.meta.url).pathname;

/** A port nothing listens on right now: bind port 0, read it, release it. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/**
 * Spawns `args` (run with the Deno binary) and resolves once
 * `GET http://127.0.0.1:<port><readyPath>` answers 200. Rejects, with the
 * process stopped and its output in the message, if it exits or times out first.
 *
 * @example
 * ```ts ignore
 * const port = freePort();
 * await using server = await spawnServer(["run", "-A", "main.ts"], {
 *   port,
 *   env: { PORT: String(port), HOSTNAME: "127.0.0.1" },
 * });
 * // talk to server.wsUrl; the server is stopped when the scope ends
 * ```
 */
export async function spawnServer(
  args: string[],
  options: SpawnServerOptions,
): Promise<ServerProcess> {
  const {
    env = {},
    cwd = REPO_ROOT,
    port,
    readyPath = "/healthz",
    readyTimeoutMs = 20_000,
    stopTimeoutMs = 5000,
    processGroup = false,
    caCert,
    openFiles,
  } = options;
  const setsid = processGroup ? findOnPath("setsid") : undefined;
  const prlimit = openFiles === undefined ? undefined : findOnPath("prlimit");
  if (openFiles !== undefined && prlimit === undefined) throw new Error("prlimit is not on PATH");
  // Each wrapper execs the next in place, so the pid stays the server's (or launcher's).
  const command = [
    ...(setsid === undefined ? [] : [setsid]),
    ...(prlimit === undefined ? [] : [prlimit, `--nofile=${openFiles}:${openFiles}`, "--"]),
    Deno.execPath(),
    ...args,
  ];
  const child = new Deno.Command(command[0]!, {
    args: command.slice(1),
    cwd,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      output = (output + decoder.decode(chunk, { stream: true })).slice(-MAX_OUTPUT_CHARS);
    }
  };
  // Read to the end whatever happens: an unread pipe would block the child
  // and trip the resource sanitizer.
  const drained = Promise.all([collect(child.stdout), collect(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });

  let stopping: Promise<Deno.CommandStatus> | undefined;
  const httpUrl = `${caCert === undefined ? "http" : "https"}://127.0.0.1:${port}`;
  const httpClient = caCert === undefined
    ? undefined
    : Deno.createHttpClient({ caCerts: [caCert] });
  const server: ServerProcess = {
    port,
    pid: child.pid,
    httpUrl,
    wsUrl: `${caCert === undefined ? "ws" : "wss"}://127.0.0.1:${port}/ws`,
    output: () => output,
    exited: status,
    stop() {
      stopping ??= (async () => {
        signal(child, "SIGTERM");
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), stopTimeoutMs);
        });
        try {
          if (await Promise.race([status, timeout]) === "timeout") {
            if (setsid !== undefined) killGroup(child);
            signal(child, "SIGKILL");
          }
        } finally {
          clearTimeout(timer);
        }
        const result = await status;
        await drained;
        return result;
      })();
      return stopping;
    },
    async [Symbol.asyncDispose]() {
      await server.stop();
    },
  };

  const deadline = Date.now() + readyTimeoutMs;
  while (!exited && Date.now() < deadline) {
    try {
      const res = await fetch(
        `${httpUrl}${readyPath}`,
        httpClient === undefined ? {} : { client: httpClient },
      );
      await res.body?.cancel();
      if (res.status === 200) {
        httpClient?.close();
        return server;
      }
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  httpClient?.close();
  const why = exited ? "exited before it was ready" : `was not ready within ${readyTimeoutMs} ms`;
  await server.stop();
  throw new Error(`server \`deno ${args.join(" ")}\` ${why}; output:\n${output}`);
}

/** Options for {@linkcode spawnParallel}: those of {@linkcode spawnServer}, with a port optional. */
export type SpawnParallelOptions = Omit<SpawnServerOptions, "port" | "env"> & { port?: number };

/**
 * `deno task start:parallel` as users run it (`scripts/serve_parallel.ts`),
 * pinned to two isolates (`DENO_JOBS=2`, so a test means the same on any
 * machine) on a free port unless `options.port` is given. The launcher runs
 * in a process group of its own, so the SIGKILL fallback reaches the server
 * it spawns; that fallback comes after 3 s unless `stopTimeoutMs` says
 * otherwise. `env` is added last and may override `DENO_JOBS`.
 */
export function spawnParallel(
  env: Record<string, string>,
  options: SpawnParallelOptions = {},
): Promise<ServerProcess> {
  const { port = freePort(), stopTimeoutMs = 3000, ...rest } = options;
  return spawnServer(["run", "-A", "scripts/serve_parallel.ts"], {
    ...rest,
    port,
    processGroup: true,
    stopTimeoutMs,
    env: { PORT: String(port), DENO_JOBS: "2", ...env },
  });
}

/**
 * `deno task start` as users run it (`main.ts` in one process) on a free
 * loopback port, with an in-memory bus and only errors logged. `env` is added
 * last (set `JWT_SECRET` there) and may override any of those.
 */
export function spawnMain(
  env: Record<string, string>,
  options: SpawnParallelOptions = {},
): Promise<ServerProcess> {
  const { port = freePort(), ...rest } = options;
  return spawnServer(["run", "-A", "main.ts"], {
    ...rest,
    port,
    env: { PORT: String(port), HOSTNAME: "127.0.0.1", BUS: "memory", LOG_LEVEL: "error", ...env },
  });
}

/** The servers {@linkcode startAll} started, in order, disposable as one. */
export type ServerGroup<T extends readonly unknown[]> =
  & { -readonly [K in keyof T]: Awaited<T[K]> }
  & AsyncDisposable;

/**
 * Awaits servers started together and returns them in order, disposable as
 * one: disposing stops them all, together. If a start fails, those that did
 * start are stopped and the first failure is thrown.
 *
 * @example
 * ```ts ignore
 * await using nodes = await startAll([startRedisNode(url, ch), startRedisNode(url, ch)]);
 * const [a, b] = nodes;
 * ```
 */
export async function startAll<const T extends readonly Promise<AsyncDisposable>[]>(
  starts: T,
): Promise<ServerGroup<T>> {
  const settled = await Promise.allSettled(starts);
  const started = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
  // Every one is stopped even when another fails to stop.
  const dispose = async () => {
    const stopped = await Promise.allSettled(started.map((s) => s[Symbol.asyncDispose]()));
    const error = stopped.find((s) => s.status === "rejected");
    if (error !== undefined) throw error.reason;
  };
  const failed = settled.find((s) => s.status === "rejected");
  if (failed !== undefined) {
    await dispose();
    throw failed.reason;
  }
  return Object.assign(started, { [Symbol.asyncDispose]: dispose }) as unknown as ServerGroup<T>;
}

function signal(child: Deno.ChildProcess, name: Deno.Signal): void {
  try {
    child.kill(name);
  } catch {
    // Already exited.
  }
}

/**
 * SIGKILL to the child's process group. `setsid` run by a process that is not
 * a group leader execs in place, so the group id is the child's pid.
 */
function killGroup(child: Deno.ChildProcess): void {
  try {
    Deno.kill(-child.pid, "SIGKILL");
  } catch {
    // The group is gone already.
  }
}

/** Absolute path of `name` on `path` (by default PATH), if any. */
export function findOnPath(name: string, path = Deno.env.get("PATH") ?? ""): string | undefined {
  for (const dir of path.split(":")) {
    if (dir === "") continue;
    const candidate = `${dir}/${name}`;
    try {
      if (Deno.statSync(candidate).isFile) return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}
