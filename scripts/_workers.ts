/**
 * `deno task start:parallel` (unless `HTTP_SERVER=deno` without TLS): what
 * `deno serve --parallel` does, with the front door of lib/edge/: one Web
 * Worker per isolate, each running main.ts, which listens on the same port
 * with SO_REUSEPORT (Linux); the kernel spreads connections over them.
 * Workers of one process share `BroadcastChannel`, so `BUS=broadcast` works
 * as under `deno serve`, and they share the process's open-file limit, which
 * each worker's socket cap divides by the number of workers. Every worker
 * handles SIGINT/SIGTERM itself (graceful close, then it ends); the process
 * exits when the last one has.
 *
 * A worker that fails (an error the process-wide guard in main.ts did not
 * catch) is started again after a second, at most 5 times a minute per
 * slot, so one bad connection cannot take every isolate down one by one.
 *
 * Started by scripts/serve_parallel.ts with `REALTIME_REUSE_PORT=1`; not for
 * hand use.
 *
 * @module
 */
import { loadConfigFromEnv } from "../lib/config.ts";

const RESTART_DELAY_MS = 1000;
const MAX_RESTARTS_PER_MINUTE = 5;

const config = loadConfigFromEnv();
const jobs = config.internal.jobs ?? navigator.hardwareConcurrency;
const main = new URL("../main.ts", import.meta.url);
let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => stopping = true);
}

function start(slot: number, restarts: number[]): void {
  const worker = new Worker(main, { type: "module", name: `isolate-${slot}` });
  worker.onerror = (event) => {
    // Handled here, the error ends this worker only, not the process.
    event.preventDefault();
    worker.terminate();
    const now = Date.now();
    const recent = restarts.filter((t) => now - t < 60_000);
    console.error(`isolate-${slot} failed: ${event.message}`);
    if (stopping || recent.length >= MAX_RESTARTS_PER_MINUTE) return;
    setTimeout(() => start(slot, [...recent, now]), RESTART_DELAY_MS);
  };
}

for (let i = 0; i < jobs; i++) start(i, []);
