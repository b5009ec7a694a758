/**
 * The environment variables and their rules: one zod schema parses each
 * variable, the cross-field rules run over what parsed, and the result is
 * arranged into the sections of {@linkcode Config}. Only lib/config.ts uses
 * this module.
 *
 * @module
 */
import { z } from "zod";
import type {
  AuthConfig,
  Config,
  ConfigIssue,
  EdgeConfig,
  KeySource,
  LimitsConfig,
  ServerConfig,
  StoreConfig,
  StoreKind,
  TlsConfig,
} from "./config.ts";
import { DEFAULT_MAX_PAYLOAD_DEPTH } from "./protocols/native/protocol.ts";
import { HTTP_SERVERS, type HttpServerName, WS_ENGINES } from "./edge/types.ts";
import { PusherEnvShape, pusherIssues, pusherSection } from "./_config_pusher.ts";
import { webhookEnvFields, webhookIssues, webhooksSection } from "./_config_webhooks.ts";
import { COMBINATIONS, storesFor } from "./broker/table.ts";
import { busKindOf, onDeploy, storeKindOf } from "./_config_deploy.ts";
import { RedisEnvShape, redisIssues, redisTarget } from "./_config_redis.ts";
import { hookEnvFields, hookIssues, hooksSection } from "./_config_hooks.ts";
import { limitsEnvFields, sharedLimitsSection } from "./_config_limits.ts";

const HS_ALGORITHMS = ["HS256", "HS384", "HS512"] as const;
const ASYMMETRIC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;

/** JWS algorithms the server can be configured to accept. `none` is never one of them. */
export const JwtAlgorithm = z.enum([...HS_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS]);
/** One accepted JWS algorithm. */
export type JwtAlgorithm = z.infer<typeof JwtAlgorithm>;

/** True for the HMAC algorithms, which need `JWT_SECRET`. */
export function isHmacAlgorithm(alg: JwtAlgorithm): boolean {
  return alg.startsWith("HS");
}

// ---------------------------------------------------------------------------
// The variables: one zod schema parses them all.

const int = (min: number, max: number) =>
  z.string().trim().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(
    z.number().int().min(min).max(max),
  );

const bool = z.string().trim().toLowerCase().pipe(
  z.enum(["1", "0", "true", "false", "yes", "no", "on", "off", ""]),
).transform((v) => ["1", "true", "yes", "on"].includes(v));

const list = z.string().transform((v) =>
  v.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
);

/** One allowed browser origin (`https://app.example.com`) or `*`; also used by Pusher apps' `allowedOrigins`. */
export const OriginSchema = z.string().refine(
  (v) => {
    if (v === "*") return true;
    try {
      const u = new URL(v);
      return u.origin === v && (u.protocol === "http:" || u.protocol === "https:");
    } catch {
      return false;
    }
  },
  "each entry must be an origin like https://app.example.com (scheme, host, optional port; no path) or *",
);

const storeKind = z.enum(["memory", "redis", "kv"]);

/** The operator's variables (the README's configuration table), keyed by name so errors name the variable. */
export const OperatorEnvSchema = z.object({
  PORT: int(0, 65535).default(8000),
  HOSTNAME: z.string().min(1).optional(),
  JWT_SECRET: z.string().min(32, "must be at least 32 characters (256 bits) for HS256").optional(),
  JWT_PUBLIC_KEY: z.string().min(1).optional(),
  JWT_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
  JWT_ALGORITHMS: list.pipe(z.array(JwtAlgorithm).min(1)).optional(),
  JWT_ISSUER: z.string().min(1).optional(),
  JWT_AUDIENCE: list.pipe(z.array(z.string()).min(1)).optional(),
  JWT_CLOCK_TOLERANCE_SEC: int(0, 300).default(5),
  JWT_REQUIRE_EXP: bool.default(true),
  AUTH_COOKIE: z.string().regex(/^[A-Za-z0-9_\-.]{1,64}$/, "must be a cookie name").default(
    "realtime_token",
  ),
  ALLOWED_ORIGINS: list.pipe(z.array(OriginSchema)).optional(),
  ROOM_POLICY: z.string().min(1).optional(),
  RATE_LIMIT_CAPACITY: int(1, 1e9).default(50),
  RATE_LIMIT_REFILL_PER_SEC: int(1, 1e9).default(10),
  RATE_LIMIT_MAX_VIOLATIONS: int(1, 1e6).default(50),
  HANDSHAKES_PER_MINUTE_PER_IP: int(1, 1e9).default(120),
  TRUST_PROXY: bool.default(false),
  MAX_CONNECTIONS: int(1, 1e7).default(10000),
  MAX_CONNECTIONS_PER_USER: int(1, 1e7).default(20),
  MAX_ROOMS_PER_CONNECTION: int(1, 1e5).default(100),
  MAX_MESSAGE_BYTES: int(64, 64 * 1024 * 1024).default(64 * 1024),
  MAX_PAYLOAD_DEPTH: int(1, 100_000).default(DEFAULT_MAX_PAYLOAD_DEPTH),
  MAX_BUFFERED_BYTES: int(1024, 1024 * 1024 * 1024).default(4 * 1024 * 1024),
  HEARTBEAT_MS: int(1000, 3_600_000).default(30_000),
  EXPIRY_WARNING_MS: int(0, 86_400_000).default(60_000),
  TICKET_TTL_MS: int(1000, 3_600_000).default(30_000),
  TICKET_BIND_ORIGIN: bool.default(true),
  TICKET_STORE_MAX_BYTES: int(64 * 1024, 1024 * 1024 * 1024).default(32 * 1024 * 1024),
  API_KEY: z.string().min(32, "must be at least 32 characters").optional(),
  ADMIN_ROLE: z.string().min(1).optional(),
  METRICS_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  REVOCATION_TTL_SEC: int(60, 366 * 86_400).default(86_400),
  REVOCATION_SYNC_MS: int(100, 600_000).default(5000),
  SHUTDOWN_GRACE_MS: int(0, 600_000).default(10_000),
  BODY_TIMEOUT_MS: int(100, 600_000).default(10_000),
  HTTP_SERVER: z.enum(HTTP_SERVERS).optional(),
  WS_ENGINE: z.enum(WS_ENGINES).optional(),
  HEADERS_TIMEOUT_MS: int(100, 600_000).default(10_000),
  BUS: z.enum(["broadcast", "redis", "memory", "kv"]).optional(),
  STORE: storeKind.optional(),
  KV_PATH: z.string().min(1).optional(),
  HISTORY_STORE: storeKind.optional(),
  HISTORY_SIZE: int(0, 10_000).optional(),
  HISTORY_TTL_SEC: int(1, 7 * 86_400).default(600),
  HISTORY_MAX_BYTES: int(1024, 2 ** 40).default(64 * 1024 * 1024),
  HISTORY_PAGE_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  DEDUP_WINDOW_SEC: int(1, 86_400).default(300),
  PRESENCE: bool.optional(),
  PRESENCE_DIFF_MS: int(10, 60_000).default(250),
  PRESENCE_MAX_MEMBERS: int(1, 1_000_000).default(1000),
  PRESENCE_TTL_MS: int(1000, 3_600_000).default(30_000),
  BUS_CHANNEL: z.string().min(1).max(200).default("realtime"),
  ...RedisEnvShape,
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warning", "error", "fatal"]).default("info"),
  LOG_FORMAT: z.enum(["json", "text"]).default("json"),
  DEMO: bool.default(false),
  DENO_ENV: z.string().optional(),
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  ...PusherEnvShape,
  ...webhookEnvFields,
  ...hookEnvFields,
  ...limitsEnvFields,
});

/**
 * Variables the operator does not set: process flags set by launchers and
 * tests, and the platform's own. Kept apart from the operator's settings.
 */
export const InternalEnvSchema = z.object({
  /** Set by Deno Deploy: production, and its managed KV database. */
  DENO_DEPLOYMENT_ID: z.string().optional(),
  REALTIME_SERVE_MODE: bool.default(false),
  REALTIME_REUSE_PORT: bool.default(false),
  REALTIME_WATCH: bool.default(false),
  DENO_JOBS: int(1, 1024).optional(),
  BUS_TEST_DROP_RATE: z.string().trim().regex(
    /^(0(\.\d+)?|1(\.0+)?)$/,
    "must be a fraction from 0 to 1",
  ).transform(Number).optional(),
});

/** Every variable the server reads: {@linkcode OperatorEnvSchema} and {@linkcode InternalEnvSchema}. */
export const EnvSchema = OperatorEnvSchema.extend(InternalEnvSchema.shape);
/** The parsed variables. */
export type Env = z.output<typeof EnvSchema>;

/** The single-variable failures zod found, each naming its variable. */
function fieldIssues(error: z.ZodError): ConfigIssue[] {
  return error.issues.map((issue) => ({
    variable: String(issue.path[0] ?? "config"),
    message: issue.message.replace(/^Invalid input: /, ""),
  }));
}

/** The key the variables name (the first one set, when several are, which is itself an issue). */
function keySource(env: Env): KeySource {
  return env.JWT_SECRET !== undefined
    ? { kind: "secret", secret: env.JWT_SECRET }
    : env.JWT_PUBLIC_KEY !== undefined
    ? { kind: "publicKey", key: env.JWT_PUBLIC_KEY }
    : env.JWT_JWKS_URL !== undefined
    ? { kind: "jwks", url: env.JWT_JWKS_URL }
    : { kind: "dev" };
}

function isProduction(env: Env): boolean {
  return env.DENO_ENV === "production" || onDeploy(env);
}

function algorithmsFor(env: Env, key: KeySource): JwtAlgorithm[] {
  const hmac = key.kind === "secret" || key.kind === "dev";
  return env.JWT_ALGORITHMS ?? (hmac ? ["HS256"] : [...ASYMMETRIC_ALGORITHMS]);
}

/** Cross-field rules of the key: one source, none in production, algorithms that fit it. */
function keyIssues(env: Env, key: KeySource): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const sources = (["JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL"] as const).filter((k) =>
    env[k] !== undefined
  );
  if (sources.length > 1) {
    issues.push({
      variable: sources[1] ?? "JWT_SECRET",
      message: `set only one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL (found ${
        sources.join(", ")
      })`,
    });
  }
  if (key.kind === "dev" && isProduction(env)) {
    const where = onDeploy(env) ? "on Deno Deploy" : "with DENO_ENV=production";
    issues.push({
      variable: "JWT_SECRET",
      message:
        `no JWT key is configured and dev mode refuses to run ${where}: set JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL`,
    });
  }
  const hmac = key.kind === "secret" || key.kind === "dev";
  const wrong = algorithmsFor(env, key).filter((a) => isHmacAlgorithm(a) !== hmac);
  if (wrong.length > 0) {
    issues.push({
      variable: "JWT_ALGORITHMS",
      message: hmac
        ? `${
          wrong.join(", ")
        } need a public key, but the key is a shared secret (JWT_SECRET): allow only HS256, HS384 or HS512`
        : `${
          wrong.join(", ")
        } need JWT_SECRET, but the key is a public key: mixing them allows algorithm confusion`,
    });
  }
  return issues;
}

/** `STORE` and `HISTORY_STORE` against `BUS`, by the combinations table (lib/broker/table.ts). */
function combinationIssues(env: Env, store: StoreKind, historyStore: StoreKind): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  // HISTORY_STORE unset follows STORE: only STORE is named then.
  const set = env.HISTORY_STORE === undefined ? [] : [["HISTORY_STORE", historyStore] as const];
  const bus = busKindOf(env);
  for (const [variable, kind] of [["STORE", store] as const, ...set]) {
    if (COMBINATIONS[bus][kind].broker !== null) continue;
    issues.push({
      variable,
      message: `must be ${storesFor(bus).join(" or ")} when BUS=${bus}`,
    });
  }
  return issues;
}

/** Cross-field rules of the backends, TLS and test-only flags. */
function backendIssues(env: Env): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const store = storeKindOf(env);
  const historyStore = env.HISTORY_STORE ?? store;
  const needRedis = [
    ["BUS", busKindOf(env)],
    ["STORE", store],
    ["HISTORY_STORE", historyStore],
    ["LIMITS_STORE", env.LIMITS_STORE],
  ].find(([, kind]) => kind === "redis");
  issues.push(...redisIssues(env, needRedis?.join("=")));
  issues.push(...combinationIssues(env, store, historyStore));
  if (httpServerOf(env) === "deno" && env.WS_ENGINE === "ws") {
    issues.push({
      variable: "WS_ENGINE",
      message: "ws needs HTTP_SERVER=node (Deno.serve upgrades to Deno's own socket)",
    });
  }
  if (env.BUS_TEST_DROP_RATE !== undefined && env.DENO_ENV !== "test") {
    issues.push({
      variable: "BUS_TEST_DROP_RATE",
      message: "is a test-only fault injection: refused unless DENO_ENV=test",
    });
  }
  if ((env.TLS_CERT_FILE === undefined) !== (env.TLS_KEY_FILE === undefined)) {
    const missing = env.TLS_CERT_FILE === undefined ? "TLS_CERT_FILE" : "TLS_KEY_FILE";
    const other = missing === "TLS_CERT_FILE" ? "TLS_KEY_FILE" : "TLS_CERT_FILE";
    issues.push({
      variable: missing,
      message: `is required when ${other} is set (TLS needs both the certificate and its key)`,
    });
  }
  return issues;
}

/** One issue per variable (the first found), in the order the schema lists them. */
function onePerVariable(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const order = Object.keys(EnvSchema.shape);
  const seen = new Map<string, ConfigIssue>();
  for (const issue of issues) if (!seen.has(issue.variable)) seen.set(issue.variable, issue);
  const rank = (v: string) => order.indexOf(v) === -1 ? order.length : order.indexOf(v);
  return [...seen.values()].sort((a, b) => rank(a.variable) - rank(b.variable));
}

/** The variables parsed, or every mistake found in them. */
export type ParsedEnv = { ok: true; env: Env } | { ok: false; issues: ConfigIssue[] };

/**
 * Parses every variable, then checks the cross-field rules over those that
 * parsed (a bad variable counts as unset there), so that one start-up names
 * every mistake.
 */
export function parseEnv(raw: Record<string, string | undefined>): ParsedEnv {
  const cleaned: Record<string, string> = {};
  for (const name of Object.keys(EnvSchema.shape)) {
    const value = raw[name];
    // Empty counts as unset: `FOO=` in a shell falls back to the default.
    if (value !== undefined && value !== "") cleaned[name] = value;
  }
  const first = EnvSchema.safeParse(cleaned);
  const issues = first.success ? [] : fieldIssues(first.error);
  const bad = new Set(issues.map((i) => i.variable));
  const second = first.success
    ? first
    : EnvSchema.safeParse(Object.fromEntries(Object.entries(cleaned).filter(([k]) => !bad.has(k))));
  // Every variable is optional or has a default, so what is left parses.
  if (!second.success) return { ok: false, issues: onePerVariable(issues) };
  const env = second.data;
  issues.push(
    ...keyIssues(env, keySource(env)),
    ...backendIssues(env),
    ...pusherIssues(env),
    ...webhookIssues(env),
    ...hookIssues(env),
  );
  return issues.length === 0 ? { ok: true, env } : { ok: false, issues: onePerVariable(issues) };
}

// ---------------------------------------------------------------------------
// Sections: parsed variables arranged by concern.

/** `HTTP_SERVER`, or its default: `deno` on Deno Deploy (the platform is the front door), else `node`. */
function httpServerOf(env: Env): HttpServerName {
  return env.HTTP_SERVER ?? (onDeploy(env) ? "deno" : "node");
}

function edgeSection(env: Env): EdgeConfig {
  const httpServer = httpServerOf(env);
  return {
    httpServer,
    wsEngine: httpServer === "deno" ? "deno" : env.WS_ENGINE ?? "ws",
    headersTimeoutMs: env.HEADERS_TIMEOUT_MS,
  };
}

function serverSection(env: Env, devMode: boolean, tls: TlsConfig | undefined): ServerConfig {
  return {
    port: env.PORT,
    hostname: env.HOSTNAME ?? (devMode ? "127.0.0.1" : "0.0.0.0"),
    production: isProduction(env),
    onDeploy: onDeploy(env),
    devMode,
    demo: env.DEMO || devMode,
    trustProxy: env.TRUST_PROXY,
    plaintextInProduction: env.DENO_ENV === "production" && !onDeploy(env) &&
      tls === undefined && !env.TRUST_PROXY,
    heartbeatMs: env.HEARTBEAT_MS,
    shutdownGraceMs: env.SHUTDOWN_GRACE_MS,
    edge: edgeSection(env),
    log: { level: env.LOG_LEVEL, format: env.LOG_FORMAT },
  };
}

function authSection(env: Env, key: KeySource): AuthConfig {
  return {
    jwt: {
      key,
      algorithms: [...new Set(algorithmsFor(env, key))],
      algorithmsExplicit: env.JWT_ALGORITHMS !== undefined,
      issuer: env.JWT_ISSUER,
      audience: env.JWT_AUDIENCE,
      clockToleranceSec: env.JWT_CLOCK_TOLERANCE_SEC,
      requireExp: env.JWT_REQUIRE_EXP,
    },
    cookie: env.AUTH_COOKIE,
    allowedOrigins: env.ALLOWED_ORIGINS,
    roomPolicyPath: env.ROOM_POLICY,
    expiryWarningMs: env.EXPIRY_WARNING_MS,
    tickets: {
      ttlMs: env.TICKET_TTL_MS,
      bindOrigin: env.TICKET_BIND_ORIGIN,
      maxBytes: env.TICKET_STORE_MAX_BYTES,
    },
    revocations: {
      ttlMs: env.REVOCATION_TTL_SEC * 1000,
      syncIntervalMs: env.REVOCATION_SYNC_MS,
    },
  };
}

function limitsSection(env: Env): LimitsConfig {
  return {
    rate: {
      capacity: env.RATE_LIMIT_CAPACITY,
      refillPerSec: env.RATE_LIMIT_REFILL_PER_SEC,
      maxViolations: env.RATE_LIMIT_MAX_VIOLATIONS,
    },
    handshakesPerMinutePerIp: env.HANDSHAKES_PER_MINUTE_PER_IP,
    maxConnections: env.MAX_CONNECTIONS,
    maxConnectionsPerUser: env.MAX_CONNECTIONS_PER_USER,
    maxRoomsPerConnection: env.MAX_ROOMS_PER_CONNECTION,
    maxMessageBytes: env.MAX_MESSAGE_BYTES,
    maxPayloadDepth: env.MAX_PAYLOAD_DEPTH,
    maxBufferedBytes: env.MAX_BUFFERED_BYTES,
    bodyTimeoutMs: env.BODY_TIMEOUT_MS,
  };
}

function storeSection(env: Env): StoreConfig {
  const redis = redisTarget(env);
  return {
    kind: storeKindOf(env),
    redis: redis === undefined ? undefined : { url: redis, prefix: env.BUS_CHANNEL },
    kv: {
      path: env.KV_PATH ??
        (onDeploy(env) ? undefined : "./data/realtime.kv"),
      prefix: env.BUS_CHANNEL,
    },
  };
}

/** Arranges parsed variables into the sections of {@linkcode Config}. */
export function toConfig(env: Env): Config {
  const key = keySource(env);
  const devMode = key.kind === "dev";
  const tls = env.TLS_CERT_FILE !== undefined && env.TLS_KEY_FILE !== undefined
    ? { certFile: env.TLS_CERT_FILE, keyFile: env.TLS_KEY_FILE }
    : undefined;
  const store = storeSection(env);
  return {
    server: serverSection(env, devMode, tls),
    auth: authSection(env, key),
    limits: limitsSection(env),
    history: {
      store: env.HISTORY_STORE ?? store.kind,
      size: env.HISTORY_SIZE ?? (devMode ? 100 : 0),
      ttlMs: env.HISTORY_TTL_SEC * 1000,
      maxBytes: env.HISTORY_MAX_BYTES,
      pageBytes: env.HISTORY_PAGE_BYTES,
      dedupeWindowMs: env.DEDUP_WINDOW_SEC * 1000,
    },
    presence: {
      enabled: env.PRESENCE ?? devMode,
      diffMs: env.PRESENCE_DIFF_MS,
      maxMembers: env.PRESENCE_MAX_MEMBERS,
      ttlMs: env.PRESENCE_TTL_MS,
    },
    store,
    bus: { kind: busKindOf(env), channel: env.BUS_CHANNEL },
    admin: { apiKey: env.API_KEY, role: env.ADMIN_ROLE, metricsToken: env.METRICS_TOKEN },
    pusher: pusherSection(env, devMode),
    tls,
    webhooks: webhooksSection(env),
    hooks: hooksSection(env),
    sharedLimits: sharedLimitsSection(env),
    internal: {
      serveMode: env.REALTIME_SERVE_MODE,
      reusePort: env.REALTIME_REUSE_PORT,
      watch: env.REALTIME_WATCH,
      jobs: env.DENO_JOBS,
      busTestDropRate: env.BUS_TEST_DROP_RATE ?? 0,
    },
  };
}
