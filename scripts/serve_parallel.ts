/**
 * `deno task start:parallel`: runs main.ts under `deno serve --parallel` (one
 * isolate per core, same port) with the same environment configuration as
 * `deno task start`, PORT and HOSTNAME included. With `TLS_CERT_FILE` and
 * `TLS_KEY_FILE`, which `deno serve` cannot take, it runs
 * scripts/_tls_workers.ts instead: the same isolates as workers of one
 * process, each serving HTTPS on the shared port.
 *
 * @module
 */
import { ConfigError, configErrorLines, loadConfigFromEnv } from "../lib/config.ts";
import { plaintextWarning, readTlsFiles } from "../lib/tls.ts";

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
  console.error(`config error: ${(err as Error).message}`);
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
const workers = new URL("./_tls_workers.ts", import.meta.url).pathname;
const child = new Deno.Command(Deno.execPath(), {
  args: config.tls !== undefined
    // Deno.serve's reusePort is still unstable.
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
  env: config.tls !== undefined ? { REALTIME_REUSE_PORT: "1" } : { REALTIME_SERVE_MODE: "1" },
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => child.kill(signal));
}
Deno.exit((await child.status).code);
