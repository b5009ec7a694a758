/**
 * The synchronous hooks' variables (`HOOK_*`): their zod fields, their
 * cross-field rule (a hook URL needs `WEBHOOK_SECRET`, which signs hook
 * requests as it signs webhooks) and the `hooks` section they make. Merged
 * into the operator schema by lib/_config_env.ts.
 *
 * @module
 */
import { z } from "zod";
import type { ConfigIssue, HooksConfig } from "./config.ts";

const int = (min: number, max: number) =>
  z.string().trim().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(
    z.number().int().min(min).max(max),
  );

const httpUrl = z.string().trim().refine((v) => {
  try {
    const u = new URL(v);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}, "must be an http:// or https:// URL");

/** The `HOOK_*` fields of the environment schema. */
export const hookEnvFields = {
  HOOK_CONNECT_URL: httpUrl.optional(),
  HOOK_JOIN_URL: httpUrl.optional(),
  HOOK_PUBLISH_URL: httpUrl.optional(),
  HOOK_RPC_URL: httpUrl.optional(),
  HOOK_CONNECT_FAIL: z.enum(["closed", "open"], { error: "must be closed or open" })
    .default("closed"),
  HOOK_TIMEOUT_MS: int(10, 60_000).default(1000),
  HOOK_CONCURRENCY: int(1, 100_000).default(256),
  HOOK_BREAKER_FAILURES: int(1, 10_000).default(5),
  HOOK_BREAKER_COOLDOWN_MS: int(100, 3_600_000).default(5000),
};

/** The parsed `HOOK_*` variables, and the secret that signs them. */
type HookEnv = z.output<z.ZodObject<typeof hookEnvFields>> & {
  WEBHOOK_SECRET?: string | undefined;
};

const URL_VARIABLES = [
  "HOOK_CONNECT_URL",
  "HOOK_JOIN_URL",
  "HOOK_PUBLISH_URL",
  "HOOK_RPC_URL",
] as const;

/** A hook URL signs nothing without the secret. */
export function hookIssues(env: HookEnv): ConfigIssue[] {
  const set = URL_VARIABLES.filter((name) => env[name] !== undefined);
  if (set.length === 0 || env.WEBHOOK_SECRET !== undefined) return [];
  return [{
    variable: "WEBHOOK_SECRET",
    message: `is required when ${set.join(", ")} ${
      set.length === 1 ? "is" : "are"
    } set (every hook request is signed with it)`,
  }];
}

/** The `hooks` section. */
export function hooksSection(env: HookEnv): HooksConfig {
  return {
    urls: {
      connect: env.HOOK_CONNECT_URL,
      join: env.HOOK_JOIN_URL,
      publish: env.HOOK_PUBLISH_URL,
      rpc: env.HOOK_RPC_URL,
    },
    connectFail: env.HOOK_CONNECT_FAIL,
    secret: env.WEBHOOK_SECRET,
    timeoutMs: env.HOOK_TIMEOUT_MS,
    concurrency: env.HOOK_CONCURRENCY,
    breakerFailures: env.HOOK_BREAKER_FAILURES,
    breakerCooldownMs: env.HOOK_BREAKER_COOLDOWN_MS,
  };
}
