/**
 * `deno task start:parallel`: one isolate per core on the same port, with the
 * same environment configuration as `deno task start`, PORT and HOSTNAME
 * included. By default (and always with `TLS_CERT_FILE`/`TLS_KEY_FILE`) it
 * runs scripts/_workers.ts: one worker per core in one process, each
 * running main.ts with the node front door on the shared port. With
 * `HTTP_SERVER=deno` and no TLS it runs main.ts under `deno serve
 * --parallel` instead.
 *
 * @module
 */
import { ConfigError, configErrorLines, loadConfigFromEnv } from "../lib/config.ts";
import { plaintextWarning, readTlsFiles } from "../lib/edge/tls.ts";
import { errorMessage } from "../lib/errors.ts";
import { portInUseLine } from "../lib/_config_port.ts";

let config;
try {
  config = loadConfigFromEnv();
} catch (err) {
  if (err instanceof ConfigError) {
    for (const line of configErrorLines(err)) console.error(line);
    Deno.exit(1);
  }
  throw err;
}
if (config.server.devMode) {
  // Each isolate would invent its own secret: a token from one would fail on the others.
  console.error(
    "config error: JWT_SECRET: start:parallel needs a configured key (dev mode is per isolate)",
  );
  Deno.exit(1);
}
const warning = plaintextWarning(config);
if (warning !== undefined) console.warn(warning);
try {
  // Checked here, once, so that a bad file is one line rather than one per isolate.
  await readTlsFiles(config);
} catch (err) {
  console.error(`config error: ${errorMessage(err)}`);
  Deno.exit(1);
}
// Once here: otherwise every isolate reports it, or (deno serve) keeps running without the port.
const inUse = portInUseLine(config.server);
if (inUse !== undefined) {
  console.error(`config error: ${inUse}`);
  Deno.exit(1);
}
const main = new URL("../main.ts", import.meta.url).pathname;
// Deno KV (STORE=kv, BUS=kv) needs the unstable flag, and write access to its file's directory.
const usesKv = [config.bus.kind, config.store.kind, config.history.store].includes("kv");
const kvPath = config.store.kv.path;
const kvFile = usesKv && kvPath !== undefined && kvPath !== ":memory:" ? kvPath : undefined;
const kvDir = kvFile === undefined
  ? undefined
  : kvFile.lastIndexOf("/") > 0
  ? kvFile.slice(0, kvFile.lastIndexOf("/"))
  : ".";
const permissions = [
  "--unstable-kv",
  ...(kvDir === undefined ? [] : [`--allow-write=${kvDir}`]),
  "--allow-net",
  "--allow-env",
  "--allow-read",
];
const workers = new URL("./_workers.ts", import.meta.url).pathname;
// `deno serve` listens with Deno.serve and cannot take a certificate: the
// node front door, and TLS, run as workers of one process instead.
const asWorkers = config.server.edge.httpServer === "node" || config.tls !== undefined;
const child = new Deno.Command(Deno.execPath(), {
  args: asWorkers
    // Deno.serve's reusePort is still unstable (HTTP_SERVER=deno with TLS).
    ? ["run", "--unstable-net", ...permissions, ...Deno.args, workers]
    : [
      "serve",
      "--parallel",
      ...permissions,
      "--port",
      String(config.server.port),
      "--host",
      config.server.hostname,
      ...Deno.args,
      main,
    ],
  env: asWorkers ? { REALTIME_REUSE_PORT: "1" } : { REALTIME_SERVE_MODE: "1" },
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => child.kill(signal));
}
Deno.exit((await child.status).code);
