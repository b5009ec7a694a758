/**
 * `deno task start:parallel`: runs main.ts under `deno serve --parallel` (one
 * isolate per core, same port) with the same environment configuration as
 * `deno task start`, PORT and HOSTNAME included.
 *
 * @module
 */
import { ConfigError, loadConfigFromEnv } from "../lib/config.ts";

let config;
try {
  config = loadConfigFromEnv();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`config error: ${err.message}`);
    Deno.exit(1);
  }
  throw err;
}
if (config.devMode) {
  // Each isolate would invent its own secret: a token from one would fail on the others.
  console.error(
    "config error: JWT_SECRET: start:parallel needs a configured key (dev mode is per isolate)",
  );
  Deno.exit(1);
}
const main = new URL("../main.ts", import.meta.url).pathname;
const child = new Deno.Command(Deno.execPath(), {
  args: [
    "serve",
    "--parallel",
    "--allow-net",
    "--allow-env",
    "--allow-read",
    "--port",
    String(config.port),
    "--host",
    config.hostname,
    ...Deno.args,
    main,
  ],
  env: { REALTIME_SERVE_MODE: "1" },
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => child.kill(signal));
}
Deno.exit((await child.status).code);
