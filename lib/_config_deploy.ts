/**
 * Deno Deploy's rules: the platform is recognised by the variable it sets
 * itself (`DENO_DEPLOYMENT_ID`), and there the defaults change. The bus and
 * the store default to Deno KV (the app's managed database, opened with
 * `Deno.openKv()` and no path), because today's Deploy documents its
 * instances as isolated and says nothing of `BroadcastChannel` between them;
 * `BUS=broadcast` is still honoured when asked for, with a start-up warning.
 * An eviction (SIGINT, then SIGKILL five seconds later) closes every socket
 * at once with 1012 (main.ts, lib/shutdown.ts). Used by lib/_config_env.ts.
 *
 * @module
 */
import type { BusKind, Config, StoreKind } from "./config.ts";
import { DEFAULT_STORE } from "./broker/table.ts";

/** The variables these rules read. */
export interface DeployEnv {
  DENO_DEPLOYMENT_ID?: string | undefined;
  BUS?: BusKind | undefined;
  STORE?: StoreKind | undefined;
}

/** True when running on Deno Deploy (it sets `DENO_DEPLOYMENT_ID` for every deployment). */
export function onDeploy(env: DeployEnv): boolean {
  return env.DENO_DEPLOYMENT_ID !== undefined;
}

/** `BUS`, or its default: `kv` on Deno Deploy, else `broadcast`. */
export function busKindOf(env: DeployEnv): BusKind {
  return env.BUS ?? (onDeploy(env) ? "kv" : "broadcast");
}

/**
 * `STORE`, or its default: the bus's own backend where it has one (`redis`,
 * `kv`); on Deno Deploy `kv` with any other bus (the app's database is the
 * only state its isolated instances share); else `memory`.
 */
export function storeKindOf(env: DeployEnv): StoreKind {
  const bus = busKindOf(env);
  if (env.STORE !== undefined) return env.STORE;
  return onDeploy(env) && bus !== "redis" ? "kv" : DEFAULT_STORE[bus];
}

/**
 * What start-up warns about on Deno Deploy: `BUS=broadcast` there may not
 * reach the app's other instances (nothing in today's documentation says it
 * does), so rooms without history may reach only the members on the same
 * instance.
 *
 * @example
 * ```ts
 * import { loadConfig } from "./config.ts";
 * import { deployWarnings } from "./_config_deploy.ts";
 * const config = loadConfig({ JWT_SECRET: "x".repeat(32), DENO_DEPLOYMENT_ID: "d1", BUS: "broadcast" });
 * deployWarnings(config); // one line about BroadcastChannel
 * ```
 */
export function deployWarnings(config: Config): string[] {
  if (!config.server.onDeploy || config.bus.kind !== "broadcast") return [];
  return [
    "BUS=broadcast on Deno Deploy: BroadcastChannel may not cross the app's instances " +
    "(today's Deploy documents them as isolated); rooms without history may reach only " +
    "members on the same instance. Leave BUS unset (kv) unless you have checked that it does.",
  ];
}
