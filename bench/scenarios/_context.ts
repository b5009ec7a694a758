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
}

/** One contender per selected server, with default start options. */
export function contendersOf(ctx: Context, options: ContendersOptions = {}): Contender[] {
  const { batched = false } = options;
  return ctx.servers.flatMap((id): Contender[] => {
    const plain = { id, label: SERVERS[id].label, spec: SERVERS[id] };
    if (id !== "ours" || !batched) return [plain];
    return [plain, {
      id: OURS_BATCHED,
      label: "ours, batched (?batch=1)",
      spec: SERVERS.ours,
      clientQuery: { batch: "1" },
    }];
  });
}
