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

/** One contender per selected server, with default start options. */
export function contendersOf(ctx: Context): Contender[] {
  return ctx.servers.map((id) => ({ id, label: SERVERS[id].label, spec: SERVERS[id] }));
}
