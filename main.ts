/**
 * Entry point: read config, build the server, serve.
 *
 * Works two ways:
 * - `deno task start` (`deno run main.ts`): listens itself (lib/edge/listen.ts:
 *   the node front door, or `Deno.serve` with `HTTP_SERVER=deno`) and shuts
 *   down on SIGINT/SIGTERM (gracefully; on Deno Deploy, whose eviction is
 *   SIGINT then SIGKILL 5 s later, at once with 1012: lib/shutdown.ts). `start:parallel` runs the same in one
 *   worker per core (scripts/_workers.ts), sharing the port.
 * - `deno serve main.ts` (and `deno serve --parallel` with `HTTP_SERVER=deno`):
 *   `deno serve` uses the default export's `fetch`.
 *
 * @module
 */
import {
  ConfigError,
  configErrorLines,
  deployWarnings,
  kvPathProblem,
  loadConfigFromEnv,
} from "./lib/config.ts";
import type { Config } from "./lib/config.ts";
import { createBus } from "./lib/bus/from_config.ts";
import { createHistoryStore, historyStoreSlice } from "./lib/store/history/from_config.ts";
import { createPresenceStore, presenceStoreSlice } from "./lib/store/presence/from_config.ts";
import { configureLogging, flushLogging } from "./lib/log.ts";
import { createServer } from "./lib/server.ts";
import {
  createRevocationStore,
  revocationStoreSlice,
} from "./lib/store/revocations/from_config.ts";
import { mintToken } from "./lib/dev.ts";
import { DEV_PUSHER_APP } from "./lib/protocols/pusher/apps.ts";
import { staticRoutes } from "./lib/http/static_routes.ts";
import { plaintextWarning, readTlsFiles } from "./lib/edge/tls.ts";
import type { TlsMaterial } from "./lib/edge/tls.ts";
import { getLogger } from "@logtape/logtape";
import { connectionBudget, listen, type Listener } from "./lib/edge/listen.ts";
import { errorMessage } from "./lib/errors.ts";
import { listenErrorLine } from "./lib/_config_port.ts";
import { shutdownPlan } from "./lib/shutdown.ts";

function configOrExit(): Config {
  try {
    return loadConfigFromEnv();
  } catch (err) {
    if (err instanceof ConfigError) {
      // Every mistake at once, one line each: one restart fixes them all.
      for (const line of configErrorLines(err)) console.error(line);
      Deno.exit(1);
    }
    if (err instanceof TypeError) {
      console.error(`config error: ${err.message}`);
      Deno.exit(1);
    }
    throw err;
  }
}

const config = configOrExit();
// A KV file this process may not write never heals: say so before anything opens.
const kvProblem = await kvPathProblem(config);
if (kvProblem !== undefined) {
  console.error(`config error: ${kvProblem}`);
  Deno.exit(1);
}
// Before anything opens: a bad certificate or key path stops start-up naming it.
const tls: TlsMaterial | undefined = config.internal.serveMode
  ? undefined
  : await readTlsFiles(config).catch((err: Error) => {
    console.error(`config error: ${err.message}`);
    return Deno.exit(1);
  });
await configureLogging(config.server.log);
const log = getLogger(["realtime", "server"]);
let lastUncaughtLog = 0;
/**
 * The process-wide guard: a failure inside the runtime's own loops (Deno's
 * WebSocket event loop throws past V8's string limit on a fragmented message
 * it never bounded, docs/upstream/deno-websocket-fragments.md) surfaces as an
 * unhandled rejection, which would end the process and drop every client.
 * It is logged (at most once a second) and the process goes on.
 */
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  const now = Date.now();
  if (now - lastUncaughtLog < 1000) return;
  lastUncaughtLog = now;
  const reason = errorMessage(event.reason);
  log.error("unhandled rejection kept from ending the process: {reason}", {
    reason: reason.slice(0, 200),
  });
});
/**
 * The sockets this isolate may hold, below the process's fd limit (Deno ends
 * the process when accept meets EMFILE): `MAX_CONNECTIONS` is lowered to fit,
 * with a warning.
 */
const budget = connectionBudget(
  config.limits.maxConnections,
  config.internal.reusePort || config.internal.serveMode
    ? config.internal.jobs ?? navigator.hardwareConcurrency
    : 1,
);
if (budget.clamped) {
  const message =
    `MAX_CONNECTIONS=${config.limits.maxConnections} does not fit the open-file limit ` +
    `(${budget.fdLimit}): this isolate accepts at most ${budget.maxConnections} WebSockets`;
  if (!config.internal.reusePort) console.warn(`warning: ${message}`);
  log.warning(message);
}
for (const warning of deployWarnings(config)) {
  console.warn(`warning: ${warning}`);
  log.warning(warning);
}
const bus = await createBus(config);
const server = await createServer({
  config: { ...config, limits: { ...config.limits, maxConnections: budget.maxConnections } },
  bus,
  // Opened only when some room keeps history.
  history: () =>
    createHistoryStore(historyStoreSlice(config), {
      onError: (err) => log.error("history store: {message}", { message: err.message }),
    }),
  revocationStore: () =>
    createRevocationStore(revocationStoreSlice(config), {
      onError: (err) => log.error("revocation store: {message}", { message: err.message }),
    }),
  // Opened only when some room tracks presence.
  presence: () =>
    createPresenceStore(presenceStoreSlice(config), {
      onError: (err) => log.error("presence store: {message}", { message: err.message }),
    }),
  routes: await staticRoutes(config),
}).catch(
  (err: Error) => {
    console.error(`config error: ${err.message}`);
    Deno.exit(1);
  },
);

/** Dev mode's ready-made token, minted before listening so that the banner prints at once. */
const devToken = server.devSecret === undefined
  ? undefined
  : await mintToken(server.devSecret, { sub: "dev-user", rooms: ["*"], ttlSec: 3600 });

/**
 * Dev mode's console banner, printed once the port is ours (a banner for a
 * port another process holds would point at that process).
 */
function devBanner(token: string, port: number): string {
  const { hostname } = config.server;
  const local = hostname === "0.0.0.0" || hostname === "127.0.0.1";
  const base = `${local ? "localhost" : hostname}:${port}`;
  const [http, ws] = tls === undefined ? ["http", "ws"] : ["https", "wss"];
  return [
    "",
    "!!! DEV MODE: no JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL is set.",
    "!!! Tokens are signed with a random secret that dies with this process.",
    "!!! Never run like this in production (DENO_ENV=production refuses to).",
    "",
    `Demo:      ${http}://${base}/`,
    `Token:     ${token}`,
    `Connect:   ${ws}://${base}/ws?token=<token>   (more tokens: GET ${http}://${base}/dev/token?sub=alice)`,
    ...(server.pusher?.apps.byKey(DEV_PUSHER_APP.key) === undefined ? [] : [
      `Pusher:    app id ${DEV_PUSHER_APP.id}, key ${DEV_PUSHER_APP.key}, secret ${DEV_PUSHER_APP.secret}` +
      `   (${ws}://${base}/app/${DEV_PUSHER_APP.key}?protocol=7)`,
    ]),
    "",
  ].join("\n");
}

/** The lines under "Listening on …": where the demo and admin pages are, when they are served. */
function pageLines(base: string): string[] {
  const { apiKey, role } = config.admin;
  return [
    ...(config.server.demo && !config.server.devMode ? [`Demo:      ${base}/`] : []),
    ...(apiKey === undefined && role === undefined ? [] : [
      `Admin:     ${base}/admin   (sign in with ${
        apiKey === undefined ? "an admin JWT" : "API_KEY"
      })`,
    ]),
  ];
}

/**
 * The `deno serve` entry: the same handler, one per isolate. Only filled in
 * serve mode (set by `deno task start:parallel`), so that `deno run` neither
 * warns about it nor binds the port twice.
 */
const entry: Partial<Deno.ServeDefaultExport> = config.internal.serveMode
  ? { fetch: (req, info) => server.handler(req, info) }
  : {};
export default entry;

let stopping = false;
/**
 * Shutdown, whoever owns the listener, by the plan for where we run
 * (lib/shutdown.ts): gracefully (clients get 1001 "server going away",
 * buffered frames get `SHUTDOWN_GRACE_MS`), or on Deno Deploy's eviction
 * fast (1012 "service restart" at once, everything bounded to end before
 * the SIGKILL five seconds later). Either way API bodies still arriving are
 * abandoned, in-flight HTTP requests get a bounded wait, the bus and timers
 * are released and logs are flushed.
 */
async function stop(signal: string, listener?: Listener): Promise<void> {
  if (stopping) return;
  stopping = true;
  const plan = shutdownPlan(config.server);
  log.info("shutting down", { signal, restart: plan.restart });
  if (plan.deadlineMs !== undefined) {
    // Whatever is still closing then (a store, the bus, the log flush) is cut short.
    Deno.unrefTimer(setTimeout(() => Deno.exit(0), plan.deadlineMs));
  }
  await server.shutdown({ graceMs: plan.graceMs, restart: plan.restart });
  if (listener !== undefined) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = await Promise.race([
      listener.shutdown().then(() => true),
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), plan.httpDrainMs)),
    ]);
    clearTimeout(timer);
    if (!drained) {
      log.warning("HTTP connections still open after {ms} ms", { ms: plan.httpDrainMs });
    }
  }
  await server.close();
  await flushLogging();
}

if (config.internal.serveMode) {
  if (devToken !== undefined) console.warn(devBanner(devToken, config.server.port));
  // `deno serve` stops listening on SIGINT/SIGTERM by itself, then waits for
  // the isolate to go idle: without this, the open bus keeps it alive forever
  // and clients never hear 1001.
  Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
} else if (import.meta.main) {
  const warning = plaintextWarning(config);
  // One warning per process: under start:parallel each worker is its own main.
  if (warning !== undefined && !config.internal.reusePort) {
    console.warn(warning);
    log.warning("plain HTTP in production without a trusted proxy: tokens travel in clear");
  }
  let listener: Listener;
  try {
    listener = await listen(server.handler, {
      config: {
        port: config.server.port,
        hostname: config.server.hostname,
        reusePort: config.internal.reusePort,
        edge: config.server.edge,
      },
      tls,
      budget,
      maxMessageBytes: config.limits.maxMessageBytes,
      onListen({ hostname, port }) {
        log.info("listening", {
          hostname,
          port,
          instanceId: server.instanceId,
          tls: !!tls,
          httpServer: config.server.edge.httpServer,
          wsEngine: config.server.edge.wsEngine,
          maxSockets: budget.maxSockets,
        });
        if (devToken !== undefined) console.warn(devBanner(devToken, port));
        // One line per process: under start:parallel the workers listen quietly.
        if (!config.internal.reusePort) {
          const scheme = tls ? "https" : "http";
          const local = hostname === "0.0.0.0" || hostname === "127.0.0.1";
          const base = `${scheme}://${local ? "localhost" : hostname}:${port}`;
          console.error(
            [
              `Listening on ${scheme}://${hostname}:${port}/ (TLS ${tls ? "on" : "off"})`,
              ...pageLines(base),
            ].join("\n"),
          );
        }
      },
    });
  } catch (err) {
    // A port in use, a certificate and key that do not belong together, or a PEM the runtime cannot use.
    console.error(`config error: ${listenErrorLine(err, config.server, tls !== undefined)}`);
    await server.close();
    Deno.exit(1);
  }
  if (listener.stats !== undefined) server.metrics.watchEdge(listener.stats, budget.maxSockets);
  const exit = (signal: string) => void stop(signal, listener).then(() => Deno.exit(0));
  // Under `deno task dev` a listener would only end main.ts, and the watcher would go on.
  if (!config.internal.watch) {
    Deno.addSignalListener("SIGINT", () => exit("SIGINT"));
    Deno.addSignalListener("SIGTERM", () => exit("SIGTERM"));
  }
}
