/**
 * The Pusher front door's variables: one app from `PUSHER_APP_ID`,
 * `PUSHER_APP_KEY` and `PUSHER_APP_SECRET`, several from `PUSHER_APPS_FILE`
 * (read and validated by lib/protocols/pusher/apps.ts at start-up). Merged
 * into the operator schema by lib/_config_env.ts.
 *
 * @module
 */
import { z } from "zod";
import type { ConfigIssue, PusherConfig } from "./config.ts";

/** The Pusher variables, keyed by name so errors name the variable. */
export const PusherEnvShape = {
  PUSHER_APP_ID: z.string().regex(/^[A-Za-z0-9_\-.]{1,64}$/, "must be 1-64 of A-Z a-z 0-9 _ - .")
    .optional(),
  PUSHER_APP_KEY: z.string().regex(/^[A-Za-z0-9_\-.]{1,64}$/, "must be 1-64 of A-Z a-z 0-9 _ - .")
    .optional(),
  PUSHER_APP_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
  PUSHER_APPS_FILE: z.string().min(1).optional(),
};

/** The parsed Pusher variables. */
export interface PusherEnv {
  PUSHER_APP_ID?: string | undefined;
  PUSHER_APP_KEY?: string | undefined;
  PUSHER_APP_SECRET?: string | undefined;
  PUSHER_APPS_FILE?: string | undefined;
}

const TRIO = ["PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET"] as const;

/** Cross-field rule: the one-app variables come all three or not at all. */
export function pusherIssues(env: PusherEnv): ConfigIssue[] {
  const set = TRIO.filter((name) => env[name] !== undefined);
  if (set.length === 0 || set.length === TRIO.length) return [];
  const missing = TRIO.filter((name) => env[name] === undefined);
  return missing.map((variable) => ({
    variable,
    message: `is required when ${set.join(" and ")} ${
      set.length === 1 ? "is" : "are"
    } set (one Pusher app needs its id, key and secret)`,
  }));
}

/** The `pusher` section of the config. */
export function pusherSection(env: PusherEnv, devMode: boolean): PusherConfig {
  const { PUSHER_APP_ID: id, PUSHER_APP_KEY: key, PUSHER_APP_SECRET: secret } = env;
  return {
    app: id !== undefined && key !== undefined && secret !== undefined
      ? { id, key, secret }
      : undefined,
    appsFile: env.PUSHER_APPS_FILE,
    devApp: devMode,
  };
}
