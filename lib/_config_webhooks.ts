/**
 * The webhook variables (`WEBHOOK_*`): their zod fields, their cross-field
 * rule (a URL needs the secret) and the `webhooks` section they make. Kept
 * apart from lib/_config_env.ts, which spreads them into its schema; only
 * the configuration modules use this one.
 *
 * @module
 */
import { z } from "zod";
import type { ConfigIssue, WebhooksConfig } from "./config.ts";
import { DEFAULT_NATIVE_EVENTS, NATIVE_EVENT_NAMES } from "./webhooks/events.ts";

const int = (min: number, max: number) =>
  z.string().trim().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(
    z.number().int().min(min).max(max),
  );

const list = z.string().transform((v) =>
  v.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
);

const httpUrl = z.string().refine((v) => {
  try {
    const u = new URL(v);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}, "each entry must be an http:// or https:// URL");

/** The `WEBHOOK_*` fields of the environment schema. */
export const webhookEnvFields = {
  WEBHOOK_URL: list.pipe(
    z.array(httpUrl).min(1, "must name at least one URL").max(16, "at most 16 URLs")
      .refine((urls) => new Set(urls).size === urls.length, "lists a URL twice"),
  ).optional(),
  WEBHOOK_EVENTS: list.pipe(
    z.array(
      z.enum(NATIVE_EVENT_NAMES, {
        error: (issue) =>
          `unknown event ${JSON.stringify(issue.input)}; known: ${NATIVE_EVENT_NAMES.join(", ")}`,
      }),
    ).min(1, "must name at least one event"),
  ).optional(),
  WEBHOOK_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  WEBHOOK_TIMEOUT_MS: int(100, 60_000).default(5000),
  WEBHOOK_RETRY_SEC: int(1, 7 * 86_400).default(3600),
  WEBHOOK_QUEUE_MAX: int(1, 10_000_000).default(100_000),
};

/** The parsed `WEBHOOK_*` variables. */
type WebhookEnv = z.output<z.ZodObject<typeof webhookEnvFields>>;

/** A URL signs nothing without the secret. */
export function webhookIssues(env: WebhookEnv): ConfigIssue[] {
  if (env.WEBHOOK_URL === undefined || env.WEBHOOK_SECRET !== undefined) return [];
  return [{
    variable: "WEBHOOK_SECRET",
    message: "is required when WEBHOOK_URL is set (every webhook is signed with it)",
  }];
}

/** The `webhooks` section. */
export function webhooksSection(env: WebhookEnv): WebhooksConfig {
  return {
    urls: env.WEBHOOK_URL ?? [],
    events: env.WEBHOOK_EVENTS ?? [...DEFAULT_NATIVE_EVENTS],
    secret: env.WEBHOOK_SECRET,
    timeoutMs: env.WEBHOOK_TIMEOUT_MS,
    retryMs: env.WEBHOOK_RETRY_SEC * 1000,
    queueMax: env.WEBHOOK_QUEUE_MAX,
  };
}
