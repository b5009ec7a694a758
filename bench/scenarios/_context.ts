/**
 * What every scenario receives from the orchestrator.
 *
 * @module
 */
import type { BenchConfig } from "../_config.ts";
import type { Contender } from "../_alternate.ts";
import { type ServerId, SERVERS } from "../_servers.ts";

/** Inputs of a scenario. */
export interface Context {
  config: BenchConfig;
  /** Servers selected on the command line, in report order. */
  servers: readonly ServerId[];
}

/** Row id of ours with write coalescing on (`?batch=1`). */
export const OURS_BATCHED = "ours_batched";

/** Row id of ours with Deno's own WebSocket instead of the default `ws` engine. */
export const OURS_DENO_ENGINE = "ours_deno_engine";

/** How the batched row differs, for section descriptions. */
export const BATCHED_NOTE =
  '"ours, batched" is the same ours process, measured in its own turn of ' +
  "each round, with clients connecting with `?batch=1` (several messages may share a frame, " +
  "newline-separated).";

/** Options for {@linkcode contendersOf}. */
export interface ContendersOptions {
  /**
   * Add ours with `?batch=1` on its client URL right after ours (same process,
   * same config), for scenarios where several messages can share a frame.
   * @default false
   */
  batched?: boolean;
  /**
   * Add ours with `WS_ENGINE=deno` (its own process): Deno's socket on the
   * same front door, cheaper per delivery but with unbounded fragmented
   * messages (README, Security notes).
   * @default false
   */
  denoEngine?: boolean;
}

/** One contender per selected server, with default start options. */
export function contendersOf(ctx: Context, options: ContendersOptions = {}): Contender[] {
  const { batched = false, denoEngine = false } = options;
  return ctx.servers.flatMap((id): Contender[] => {
    const plain = { id, label: SERVERS[id].label, spec: SERVERS[id] };
    if (id !== "ours") return [plain];
    return [
      plain,
      ...(denoEngine
        ? [{
          id: OURS_DENO_ENGINE,
          label: "ours, WS_ENGINE=deno",
          spec: SERVERS.ours,
          startOptions: { env: { WS_ENGINE: "deno" } },
        }]
        : []),
      ...(batched
        ? [{
          id: OURS_BATCHED,
          label: "ours, batched (?batch=1)",
          spec: SERVERS.ours,
          clientQuery: { batch: "1" },
        }]
        : []),
    ];
  });
}
