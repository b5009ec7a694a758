/**
 * Configuration from environment variables, validated once at start-up. This
 * is the only module that reads `Deno.env`; everything else receives a
 * {@linkcode Config}.
 *
 * @module
 */
import { z } from "zod";
import { DEFAULT_MAX_PAYLOAD_DEPTH } from "./protocol.ts";

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

const origin = z.string().refine(
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

/** The schema of the environment, keyed by variable name so errors name the variable. */
export const EnvSchema = z.object({
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
  ALLOWED_ORIGINS: list.pipe(z.array(origin)).optional(),
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
  HEARTBEAT_MS: int(1000, 3_600_000).default(30_000),
  EXPIRY_WARNING_MS: int(0, 86_400_000).default(60_000),
  TICKET_TTL_MS: int(1000, 3_600_000).default(30_000),
  TICKET_BIND_ORIGIN: bool.default(true),
  TICKET_STORE_MAX_BYTES: int(64 * 1024, 1024 * 1024 * 1024).default(32 * 1024 * 1024),
  API_KEY: z.string().min(32, "must be at least 32 characters").optional(),
  ADMIN_ROLE: z.string().min(1).optional(),
  REVOCATION_TTL_SEC: int(60, 366 * 86_400).default(86_400),
  REVOCATION_SYNC_MS: int(100, 600_000).default(5000),
  METRICS_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  MAX_BUFFERED_BYTES: int(1024, 1024 * 1024 * 1024).default(4 * 1024 * 1024),
  SHUTDOWN_GRACE_MS: int(0, 600_000).default(10_000),
  BODY_TIMEOUT_MS: int(100, 600_000).default(10_000),
  BUS: z.enum(["broadcast", "redis", "memory", "kv"]).default("broadcast"),
  KV_PATH: z.string().min(1).optional(),
  BUS_TEST_DROP_RATE: z.string().trim().regex(
    /^(0(\.\d+)?|1(\.0+)?)$/,
    "must be a fraction from 0 to 1",
  )
    .transform(Number).optional(),
  STORE: z.enum(["memory", "redis", "kv"]).optional(),
  HISTORY_STORE: z.enum(["memory", "redis", "kv"]).optional(),
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
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warning", "error", "fatal"]).default("info"),
  LOG_FORMAT: z.enum(["json", "text"]).default("json"),
  DEMO: bool.default(false),
  DENO_ENV: z.string().optional(),
  REALTIME_SERVE_MODE: bool.default(false),
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  REALTIME_REUSE_PORT: bool.default(false),
  DENO_JOBS: int(1, 1024).optional(),
  DENO_DEPLOYMENT_ID: z.string().optional(),
});

/** Where the verification key comes from. */
export type KeySource =
  | { kind: "secret"; secret: string }
  | { kind: "publicKey"; key: string }
  | { kind: "jwks"; url: string }
  | { kind: "dev" };

function toConfig(env: z.output<typeof EnvSchema>, ctx: z.RefinementCtx) {
  const sources = (["JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL"] as const).filter((k) =>
    env[k] !== undefined
  );
  if (sources.length > 1) {
    ctx.addIssue({
      code: "custom",
      path: [sources[1] ?? "JWT_SECRET"],
      message: `set only one of JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL (found ${
        sources.join(", ")
      })`,
    });
    return z.NEVER;
  }
  const production = env.DENO_ENV === "production" || env.DENO_DEPLOYMENT_ID !== undefined;
  const key: KeySource = env.JWT_SECRET !== undefined
    ? { kind: "secret", secret: env.JWT_SECRET }
    : env.JWT_PUBLIC_KEY !== undefined
    ? { kind: "publicKey", key: env.JWT_PUBLIC_KEY }
    : env.JWT_JWKS_URL !== undefined
    ? { kind: "jwks", url: env.JWT_JWKS_URL }
    : { kind: "dev" };
  if (key.kind === "dev" && production) {
    ctx.addIssue({
      code: "custom",
      path: ["JWT_SECRET"],
      message: env.DENO_DEPLOYMENT_ID !== undefined
        ? "no JWT key is configured and dev mode refuses to run on Deno Deploy: set JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL"
        : "no JWT key is configured and dev mode refuses to run with DENO_ENV=production: set JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL",
    });
    return z.NEVER;
  }
  const hmac = key.kind === "secret" || key.kind === "dev";
  const algorithms = env.JWT_ALGORITHMS ??
    (hmac ? ["HS256" as const] : [...ASYMMETRIC_ALGORITHMS]);
  const wrong = algorithms.filter((a) => isHmacAlgorithm(a) !== hmac);
  if (wrong.length > 0) {
    ctx.addIssue({
      code: "custom",
      path: ["JWT_ALGORITHMS"],
      message: hmac
        ? `${
          wrong.join(", ")
        } need a public key, but the key is a shared secret (JWT_SECRET): allow only HS256, HS384 or HS512`
        : `${
          wrong.join(", ")
        } need JWT_SECRET, but the key is a public key: mixing them allows algorithm confusion`,
    });
    return z.NEVER;
  }
  if (env.BUS === "redis" && env.REDIS_URL === undefined) {
    ctx.addIssue({ code: "custom", path: ["REDIS_URL"], message: "is required when BUS=redis" });
    return z.NEVER;
  }
  const store = env.STORE ?? (env.BUS === "redis" ? "redis" : env.BUS === "kv" ? "kv" : "memory");
  const historyStore = env.HISTORY_STORE ?? store;
  if (env.BUS === "kv" && (store !== "kv" || historyStore !== "kv")) {
    // BUS=kv delivers history rooms through the KV history store's head watch.
    ctx.addIssue({
      code: "custom",
      path: [store !== "kv" ? "STORE" : "HISTORY_STORE"],
      message: "must be kv when BUS=kv",
    });
    return z.NEVER;
  }
  if (env.BUS_TEST_DROP_RATE !== undefined && env.DENO_ENV !== "test") {
    ctx.addIssue({
      code: "custom",
      path: ["BUS_TEST_DROP_RATE"],
      message: "is a test-only fault injection: refused unless DENO_ENV=test",
    });
    return z.NEVER;
  }
  for (const [name, kind] of [["STORE", store], ["HISTORY_STORE", historyStore]] as const) {
    if (kind === "redis" && env.REDIS_URL === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["REDIS_URL"],
        message: `is required when ${name}=redis`,
      });
      return z.NEVER;
    }
  }
  if ((env.TLS_CERT_FILE === undefined) !== (env.TLS_KEY_FILE === undefined)) {
    const missing = env.TLS_CERT_FILE === undefined ? "TLS_CERT_FILE" : "TLS_KEY_FILE";
    const other = missing === "TLS_CERT_FILE" ? "TLS_KEY_FILE" : "TLS_CERT_FILE";
    ctx.addIssue({
      code: "custom",
      path: [missing],
      message: `is required when ${other} is set (TLS needs both the certificate and its key)`,
    });
    return z.NEVER;
  }
  const tls = env.TLS_CERT_FILE !== undefined && env.TLS_KEY_FILE !== undefined
    ? { certFile: env.TLS_CERT_FILE, keyFile: env.TLS_KEY_FILE }
    : undefined;
  return {
    port: env.PORT,
    /** Set by `deno task start:parallel`: `deno serve` owns the listener, main.ts must not call Deno.serve. */
    serveMode: env.REALTIME_SERVE_MODE,
    /** `HOSTNAME`; unset: 0.0.0.0, but 127.0.0.1 in dev mode (its tokens are free for the asking). */
    hostname: env.HOSTNAME ?? (key.kind === "dev" ? "127.0.0.1" : "0.0.0.0"),
    /** PEM files the server serves HTTPS/wss with; undefined: plain HTTP (a proxy or Deploy terminates TLS). */
    tls,
    /**
     * Production on our own listener, without TLS and without a proxy we were
     * told about: tokens would cross the network in clear. Warned about at start.
     */
    plaintextInProduction: env.DENO_ENV === "production" && env.DENO_DEPLOYMENT_ID === undefined &&
      tls === undefined && !env.TRUST_PROXY,
    /** Set by `deno task start:parallel` with TLS: one worker per core, each listening with SO_REUSEPORT. */
    reusePort: env.REALTIME_REUSE_PORT,
    /** `DENO_JOBS`: isolates under `deno task start:parallel` (default: one per CPU). */
    jobs: env.DENO_JOBS,
    production,
    devMode: key.kind === "dev",
    demo: env.DEMO || key.kind === "dev",
    jwt: {
      key,
      algorithms: [...new Set(algorithms)],
      /** True when JWT_ALGORITHMS was set: then every listed algorithm must fit the key. */
      algorithmsExplicit: env.JWT_ALGORITHMS !== undefined,
      issuer: env.JWT_ISSUER,
      audience: env.JWT_AUDIENCE,
      clockToleranceSec: env.JWT_CLOCK_TOLERANCE_SEC,
      requireExp: env.JWT_REQUIRE_EXP,
    },
    authCookie: env.AUTH_COOKIE,
    allowedOrigins: env.ALLOWED_ORIGINS,
    roomPolicyPath: env.ROOM_POLICY,
    rateLimit: {
      capacity: env.RATE_LIMIT_CAPACITY,
      refillPerSec: env.RATE_LIMIT_REFILL_PER_SEC,
      maxViolations: env.RATE_LIMIT_MAX_VIOLATIONS,
    },
    handshakesPerMinutePerIp: env.HANDSHAKES_PER_MINUTE_PER_IP,
    trustProxy: env.TRUST_PROXY,
    maxConnections: env.MAX_CONNECTIONS,
    maxConnectionsPerUser: env.MAX_CONNECTIONS_PER_USER,
    maxRoomsPerConnection: env.MAX_ROOMS_PER_CONNECTION,
    maxMessageBytes: env.MAX_MESSAGE_BYTES,
    /** Deepest nesting of arrays/objects in a payload (socket and publish API). */
    maxPayloadDepth: env.MAX_PAYLOAD_DEPTH,
    heartbeatMs: env.HEARTBEAT_MS,
    expiryWarningMs: env.EXPIRY_WARNING_MS,
    ticketTtlMs: env.TICKET_TTL_MS,
    ticketBindOrigin: env.TICKET_BIND_ORIGIN,
    /** Most bytes all outstanding tickets may take in the ticket store (every backend). */
    ticketStoreMaxBytes: env.TICKET_STORE_MAX_BYTES,
    apiKey: env.API_KEY,
    adminRole: env.ADMIN_ROLE,
    metricsToken: env.METRICS_TOKEN,
    revocation: {
      /** Default lifetime of a revocation: the longest token lifetime you issue. */
      ttlMs: env.REVOCATION_TTL_SEC * 1000,
      /** How often a shared revocation store is re-read (heals lost bus messages). */
      syncIntervalMs: env.REVOCATION_SYNC_MS,
    },
    maxBufferedBytes: env.MAX_BUFFERED_BYTES,
    shutdownGraceMs: env.SHUTDOWN_GRACE_MS,
    /** An API request body (`/api/publish`, `/api/revoke`) must arrive in full within this; else 408. */
    bodyTimeoutMs: env.BODY_TIMEOUT_MS,
    bus: {
      kind: env.BUS,
      channel: env.BUS_CHANNEL,
      redisUrl: env.REDIS_URL,
      /** Test-only: the fraction of outgoing broadcast envelopes dropped (DENO_ENV=test). */
      testDropRate: env.BUS_TEST_DROP_RATE ?? 0,
    },
    /**
     * The Deno KV database of `STORE=kv` and `BUS=kv`: a file, `:memory:`, or
     * `undefined` for Deno Deploy's managed database.
     */
    kv: {
      path: env.KV_PATH ??
        (env.DENO_DEPLOYMENT_ID !== undefined ? undefined : "./data/realtime.kv"),
    },
    /** Where shared state lives (history, presence, tickets, revocations). */
    store,
    history: {
      store: historyStore,
      /** Messages kept per history room by default; 0 = rooms have no history unless a policy rule says so. Dev mode: 100. */
      size: env.HISTORY_SIZE ?? (key.kind === "dev" ? 100 : 0),
      ttlMs: env.HISTORY_TTL_SEC * 1000,
      maxBytes: env.HISTORY_MAX_BYTES,
      pageBytes: env.HISTORY_PAGE_BYTES,
      dedupeWindowMs: env.DEDUP_WINDOW_SEC * 1000,
    },
    presence: {
      /** Whether rooms track presence unless a policy rule says otherwise. Dev mode: on unless PRESENCE is set. */
      enabled: env.PRESENCE ?? key.kind === "dev",
      /** Trailing-edge window of `presence_diff` batching. */
      diffMs: env.PRESENCE_DIFF_MS,
      /** Above this many users a room's state is truncated and its diffs carry only the count. */
      maxMembers: env.PRESENCE_MAX_MEMBERS,
      /** An instance not heard from (or whose store entries were not refreshed) for this long is gone. */
      ttlMs: env.PRESENCE_TTL_MS,
    },
    log: { level: env.LOG_LEVEL, format: env.LOG_FORMAT },
  };
}

/** The validated configuration: the output type of {@linkcode ConfigSchema}. */
export const ConfigSchema = EnvSchema.transform(toConfig);
/** The server's configuration. */
export type Config = z.output<typeof ConfigSchema>;

/** A configuration value was missing or invalid. `message` is one line naming the variable. */
export class ConfigError extends Error {
  /** The environment variable at fault. */
  readonly variable: string;
  /** @param variable the environment variable @param detail what is wrong with it */
  constructor(variable: string, detail: string) {
    super(`${variable}: ${detail}`);
    this.name = "ConfigError";
    this.variable = variable;
  }
}

/**
 * Validates an environment into a {@linkcode Config}. Empty strings count as
 * unset, so `FOO=` in a shell falls back to the default.
 *
 * @throws {ConfigError} naming the first bad variable
 * @example
 * ```ts
 * import { loadConfig } from "./config.ts";
 * const config = loadConfig({ JWT_SECRET: "x".repeat(32), PORT: "0" });
 * ```
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const cleaned: Record<string, string> = {};
  for (const name of Object.keys(EnvSchema.shape)) {
    const value = env[name];
    if (value !== undefined && value !== "") cleaned[name] = value;
  }
  const result = ConfigSchema.safeParse(cleaned);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const variable = String(issue?.path[0] ?? "config");
  const message = issue?.message ?? "invalid";
  throw new ConfigError(variable, message.replace(/^Invalid input: /, ""));
}

/** Reads the process environment (the one place that does). Needs `--allow-env`. */
export function loadConfigFromEnv(): Config {
  return loadConfig(Deno.env.toObject());
}
