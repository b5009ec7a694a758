/**
 * `deno task start:parallel` with TLS: `deno serve` has no option for a
 * server certificate (denoland/deno#25177), so this does what `deno serve
 * --parallel` does, with TLS: one Web Worker per isolate, each running
 * main.ts, which listens on the same port with SO_REUSEPORT (Linux) and its
 * certificate; the kernel spreads connections over them. Workers of one
 * process share `BroadcastChannel`, so `BUS=broadcast` works as under `deno
 * serve`. Every worker handles SIGINT/SIGTERM itself (graceful close, then it
 * ends); the process exits when the last one has.
 *
 * Started by scripts/serve_parallel.ts with `--unstable-net` (reusePort) and
 * `REALTIME_REUSE_PORT=1`; not for hand use.
 *
 * @module
 */
import { loadConfigFromEnv } from "../lib/config.ts";

const config = loadConfigFromEnv();
const jobs = config.internal.jobs ?? navigator.hardwareConcurrency;
const main = new URL("../main.ts", import.meta.url);
for (let i = 0; i < jobs; i++) {
  new Worker(main, { type: "module", name: `isolate-${i}` });
}
