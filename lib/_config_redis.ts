/**
 * Where Redis is: `REDIS_URL`, a primary found through Sentinel
 * (`REDIS_SENTINELS`, `REDIS_SENTINEL_NAME`, `REDIS_SENTINEL_PASSWORD`,
 * `REDIS_PASSWORD`), or a Redis Cluster (`REDIS_CLUSTER_NODES`,
 * `REDIS_PASSWORD`), for the bus and every Redis store alike. Merged into the
 * operator schema by lib/_config_env.ts.
 *
 * @module
 */
import { z } from "zod";
import type { ConfigIssue, RedisTarget } from "./config.ts";

/** A comma-separated list of `host:port`, blanks ignored. */
function hostPortList(max: number) {
  return z.string().transform((v) => v.split(",").map((s) => s.trim()).filter((s) => s.length > 0))
    .pipe(z.array(hostPort).min(1).max(max));
}

const hostPort = z.string().trim().regex(
  /^[A-Za-z0-9.\-]+:\d{1,5}$/,
  "each entry must be host:port",
).transform((v) => {
  const colon = v.lastIndexOf(":");
  return { host: v.slice(0, colon), port: Number(v.slice(colon + 1)) };
}).pipe(z.object({ host: z.string(), port: z.number().int().min(1).max(65535) }));

/** The Redis variables, keyed by name so errors name the variable. */
export const RedisEnvShape = {
  REDIS_URL: z.url({
    protocol: /^rediss?$/,
    error: "must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379",
  }).optional(),
  REDIS_SENTINELS: hostPortList(16).optional(),
  REDIS_CLUSTER_NODES: hostPortList(64).optional(),
  REDIS_SENTINEL_NAME: z.string().regex(
    /^[A-Za-z0-9_\-.]{1,64}$/,
    "must be 1-64 of A-Z a-z 0-9 _ - .",
  ).optional(),
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  REDIS_PASSWORD: z.string().min(1).optional(),
};

/** The parsed Redis variables. */
export interface RedisEnv {
  REDIS_URL?: string | undefined;
  REDIS_SENTINELS?: { host: string; port: number }[] | undefined;
  REDIS_CLUSTER_NODES?: { host: string; port: number }[] | undefined;
  REDIS_SENTINEL_NAME?: string | undefined;
  REDIS_SENTINEL_PASSWORD?: string | undefined;
  REDIS_PASSWORD?: string | undefined;
  /** The key and channel prefix, checked for hash-tag braces on Cluster. */
  BUS_CHANNEL?: string | undefined;
}

/** Where Redis is, or undefined when no variable names it. */
export function redisTarget(env: RedisEnv): RedisTarget | undefined {
  if (env.REDIS_URL !== undefined) return env.REDIS_URL;
  if (env.REDIS_CLUSTER_NODES !== undefined) {
    return { cluster: env.REDIS_CLUSTER_NODES, password: env.REDIS_PASSWORD };
  }
  if (env.REDIS_SENTINELS === undefined || env.REDIS_SENTINEL_NAME === undefined) return undefined;
  return {
    sentinels: env.REDIS_SENTINELS,
    name: env.REDIS_SENTINEL_NAME,
    sentinelPassword: env.REDIS_SENTINEL_PASSWORD,
    password: env.REDIS_PASSWORD,
  };
}

/**
 * Cross-field rules: one way to name Redis; the Sentinel variables come
 * together; the passwords only go with Sentinel or Cluster (a URL carries
 * its own); on Cluster the prefix holds no `{` or `}` (the room is the hash tag).
 * `needed` names what requires Redis (`BUS=redis`), if anything does.
 */
export function redisIssues(env: RedisEnv, needed: string | undefined): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const sentinel = env.REDIS_SENTINELS !== undefined;
  const cluster = env.REDIS_CLUSTER_NODES !== undefined;
  if (env.REDIS_URL !== undefined && sentinel) {
    issues.push({
      variable: "REDIS_SENTINELS",
      message: "set either REDIS_URL or REDIS_SENTINELS",
    });
  }
  if (cluster && (env.REDIS_URL !== undefined || sentinel)) {
    issues.push({
      variable: "REDIS_CLUSTER_NODES",
      message: "set only one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES",
    });
  }
  if (cluster && /[{}]/.test(env.BUS_CHANNEL ?? "")) {
    issues.push({
      variable: "BUS_CHANNEL",
      message: "must not contain { or } with REDIS_CLUSTER_NODES (each room is its keys' hash tag)",
    });
  }
  if (sentinel && env.REDIS_SENTINEL_NAME === undefined) {
    issues.push({
      variable: "REDIS_SENTINEL_NAME",
      message: "is required with REDIS_SENTINELS (the primary's name in `sentinel monitor`)",
    });
  }
  for (const name of ["REDIS_SENTINEL_NAME", "REDIS_SENTINEL_PASSWORD"] as const) {
    if (env[name] !== undefined && !sentinel) {
      issues.push({
        variable: name,
        message: "applies only with REDIS_SENTINELS (REDIS_URL carries its own credentials)",
      });
    }
  }
  if (env.REDIS_PASSWORD !== undefined && !sentinel && !cluster) {
    issues.push({
      variable: "REDIS_PASSWORD",
      message:
        "applies only with REDIS_SENTINELS or REDIS_CLUSTER_NODES (REDIS_URL carries its own credentials)",
    });
  }
  if (needed !== undefined && env.REDIS_URL === undefined && !sentinel && !cluster) {
    // Sentinel is the alternative; the README says so beside REDIS_URL.
    issues.push({ variable: "REDIS_URL", message: `is required when ${needed}` });
  }
  return issues;
}
