/**
 * Configuration from environment variables, validated once at start-up. This
 * is the only module that reads `Deno.env`; everything else receives a
 * {@linkcode Config}, or the section of it that it needs.
 *
 * This file is the shape ({@linkcode Config}, one section per concern) and
 * the entry ({@linkcode loadConfig}). lib/_config_env.ts holds the variables:
 * the zod schema {@linkcode EnvSchema} parses each one, the cross-field rules
 * run next, and every mistake is reported at once ({@linkcode ConfigError},
 * one line per variable). Process flags set by launchers and tests
 * ({@linkcode InternalEnvSchema}) are parsed apart from operator settings
 * and land in `config.internal`.
 *
 * @module
 */
import type { JwtAlgorithm } from "./_config_env.ts";
import type { HttpServerName, WsEngineName } from "./edge/types.ts";
import type { NativeEventName } from "./webhooks/events.ts";
import type { SharedLimitsConfig } from "./_config_limits.ts";
import { parseEnv, toConfig } from "./_config_env.ts";

export {
  EnvSchema,
  InternalEnvSchema,
  isHmacAlgorithm,
  JwtAlgorithm,
  OperatorEnvSchema,
} from "./_config_env.ts";
export { deployWarnings } from "./_config_deploy.ts";
export { kvPathProblem } from "./_config_kv.ts";

/** Where history, presence, tickets and revocations can live. */
export type StoreKind = "memory" | "redis" | "kv";
/** The bus transports between instances. */
export type BusKind = "broadcast" | "redis" | "memory" | "kv";

// ---------------------------------------------------------------------------
// The shape: what the rest of the server reads.

/** Where the verification key comes from. */
export type KeySource =
  | { kind: "secret"; secret: string }
  | { kind: "publicKey"; key: string }
  | { kind: "jwks"; url: string }
  | { kind: "dev" };

/** The server's configuration, one section per concern. */
export interface Config {
  /** The listener, the process's mode and logging. */
  server: ServerConfig;
  /** Who may connect: token verification, origins, room policy, tickets and revocations. */
  auth: AuthConfig;
  /** Caps and rate limits that protect the server from one client. */
  limits: LimitsConfig;
  /** History rooms: where their messages are kept and for how long. */
  history: HistoryConfig;
  /** Presence rooms: member lists and their diffs. */
  presence: PresenceConfig;
  /** Where shared state lives (tickets, revocations, presence; history by default). */
  store: StoreConfig;
  /** Live traffic between instances. */
  bus: BusConfig;
  /** Credentials of the publish API, the revoke API, the admin page and `/metrics`. */
  admin: AdminConfig;
  /** Apps of the Pusher front door (`/app/{key}`, `/apps/{id}/…`). */
  pusher: PusherConfig;
  /** PEM files the server serves HTTPS/wss with; undefined: plain HTTP (a proxy or Deploy terminates TLS). */
  tls: TlsConfig | undefined;
  /** Webhooks: where events are POSTed, which, and how they are retried. */
  webhooks: WebhooksConfig;
  /** The synchronous hooks: the backend decides connects, joins and publishes, and answers RPCs. */
  hooks: HooksConfig;
  /** Shared limits (`LIMITS_*`): where limits are kept for the whole cluster, if anywhere. */
  sharedLimits: SharedLimitsConfig;
  /** Flags set by launchers and tests, not by operators (not in the README's variable table). */
  internal: InternalConfig;
}

/** The `server` section of {@linkcode Config}. */
export interface ServerConfig {
  /** `PORT`: listening port; 0 picks a free one. */
  port: number;
  /** `HOSTNAME`; unset: 0.0.0.0, but 127.0.0.1 in dev mode (its tokens are free for the asking). */
  hostname: string;
  /** `DENO_ENV=production`, or running on Deno Deploy: dev mode is refused. */
  production: boolean;
  /**
   * Running on Deno Deploy (`DENO_DEPLOYMENT_ID` is set): `BUS` and `STORE`
   * default to `kv`, and a signal closes every socket at once with 1012.
   */
  onDeploy: boolean;
  /** No JWT key is configured: tokens are signed with a per-process random secret. */
  devMode: boolean;
  /** `DEMO`: serve the demo page at `/` (always in dev mode). */
  demo: boolean;
  /** `TRUST_PROXY`: believe `X-Forwarded-For` for the client's address. */
  trustProxy: boolean;
  /**
   * Production on our own listener, without TLS and without a proxy we were
   * told about: tokens would cross the network in clear. Warned about at start.
   */
  plaintextInProduction: boolean;
  /** `HEARTBEAT_MS`: protocol ping interval; also how long a replay may stall. */
  heartbeatMs: number;
  /** `SHUTDOWN_GRACE_MS`: how long shutdown waits for buffered frames. */
  shutdownGraceMs: number;
  /** How main.ts listens: `HTTP_SERVER`, `WS_ENGINE`, `HEADERS_TIMEOUT_MS`. */
  edge: EdgeConfig;
  /** `LOG_LEVEL` and `LOG_FORMAT`. */
  log: LogConfig;
}

/** The listener (`server.edge`, lib/edge/). */
export interface EdgeConfig {
  /**
   * `HTTP_SERVER`: `node` (default), the front door that caps sockets below
   * the fd limit and times out request heads; `deno` (default on Deno
   * Deploy): `Deno.serve`, for behind a platform's proxy.
   */
  httpServer: HttpServerName;
  /**
   * `WS_ENGINE`: `ws` (default with `node`) bounds every incoming message as
   * a whole; `deno` (always with `HTTP_SERVER=deno`) is Deno's own socket.
   */
  wsEngine: WsEngineName;
  /** `HEADERS_TIMEOUT_MS`: time to send a whole request head; also the keep-alive idle time. */
  headersTimeoutMs: number;
}

/** Logging settings (`server.log`). */
export interface LogConfig {
  /** `LOG_LEVEL`: the lowest level written. */
  level: "trace" | "debug" | "info" | "warning" | "error" | "fatal";
  /** `LOG_FORMAT`: `json` (one object per line) or `text`. */
  format: "json" | "text";
}

/** The `auth` section of {@linkcode Config}. */
export interface AuthConfig {
  /** How tokens are verified. */
  jwt: JwtConfig;
  /** `AUTH_COOKIE`: the cookie that may hold a token. */
  cookie: string;
  /** `ALLOWED_ORIGINS`: browser origins allowed besides the same origin; undefined: same origin only. */
  allowedOrigins: string[] | undefined;
  /** `ROOM_POLICY`: path of the room policy JSON. */
  roomPolicyPath: string | undefined;
  /** `EXPIRY_WARNING_MS`: when `expiring` is sent before a token's `exp` (0: never). */
  expiryWarningMs: number;
  /** One-time tickets (`POST /ticket`). */
  tickets: TicketsConfig;
  /** Revoked users and tokens. */
  revocations: RevocationsConfig;
}

/** Token verification (`auth.jwt`). */
export interface JwtConfig {
  /** `JWT_SECRET`, `JWT_PUBLIC_KEY` or `JWT_JWKS_URL`; none of them: dev mode. */
  key: KeySource;
  /** `JWT_ALGORITHMS`, or those that fit the key. */
  algorithms: JwtAlgorithm[];
  /** True when `JWT_ALGORITHMS` was set: then every listed algorithm must fit the key. */
  algorithmsExplicit: boolean;
  /** `JWT_ISSUER`: the required `iss`. */
  issuer: string | undefined;
  /** `JWT_AUDIENCE`: `aud` must contain one of these. */
  audience: string[] | undefined;
  /** `JWT_CLOCK_TOLERANCE_SEC`: leeway for `exp`/`nbf`. */
  clockToleranceSec: number;
  /** `JWT_REQUIRE_EXP`: refuse tokens without `exp`. */
  requireExp: boolean;
}

/** One-time tickets (`auth.tickets`). */
export interface TicketsConfig {
  /** `TICKET_TTL_MS`: a ticket's lifetime. */
  ttlMs: number;
  /** `TICKET_BIND_ORIGIN`: a ticket only works from the Origin that asked for it. */
  bindOrigin: boolean;
  /** `TICKET_STORE_MAX_BYTES`: most bytes all outstanding tickets may take (every backend). */
  maxBytes: number;
}

/** Revocations (`auth.revocations`). */
export interface RevocationsConfig {
  /** `REVOCATION_TTL_SEC` in ms: default lifetime of a revocation, the longest token lifetime you issue. */
  ttlMs: number;
  /** `REVOCATION_SYNC_MS`: how often a shared revocation store is re-read (heals lost bus messages). */
  syncIntervalMs: number;
}

/** The `limits` section of {@linkcode Config}. */
export interface LimitsConfig {
  /** The per-user message bucket. */
  rate: {
    /** `RATE_LIMIT_CAPACITY`: bucket size. */
    capacity: number;
    /** `RATE_LIMIT_REFILL_PER_SEC`: tokens added per second. */
    refillPerSec: number;
    /** `RATE_LIMIT_MAX_VIOLATIONS`: `rate_limited` answers within 10 s before a 4429 close. */
    maxViolations: number;
  };
  /** `HANDSHAKES_PER_MINUTE_PER_IP`: `/ws` and `/ticket` requests per IP per minute. */
  handshakesPerMinutePerIp: number;
  /** `MAX_CONNECTIONS`: connections per isolate. */
  maxConnections: number;
  /** `MAX_CONNECTIONS_PER_USER`: connections per user per isolate. */
  maxConnectionsPerUser: number;
  /** `MAX_ROOMS_PER_CONNECTION`: rooms one connection may hold. */
  maxRoomsPerConnection: number;
  /** `MAX_MESSAGE_BYTES`: largest client frame and publish API body. */
  maxMessageBytes: number;
  /** `MAX_PAYLOAD_DEPTH`: deepest nesting of arrays/objects in a payload (socket and publish API). */
  maxPayloadDepth: number;
  /** `MAX_BUFFERED_BYTES`: unread bytes queued for one client before a 1008 close. */
  maxBufferedBytes: number;
  /** `BODY_TIMEOUT_MS`: an API request body (`/api/publish`, `/api/revoke`) must arrive in full within this; else 408. */
  bodyTimeoutMs: number;
}

/** The `history` section of {@linkcode Config}. */
export interface HistoryConfig {
  /** `HISTORY_STORE`, default `STORE`: where history rooms keep their messages. */
  store: StoreKind;
  /** `HISTORY_SIZE`: messages kept per history room by default; 0 = none unless a policy rule says so. Dev mode: 100. */
  size: number;
  /** `HISTORY_TTL_SEC` in ms: how long a message is kept. */
  ttlMs: number;
  /** `HISTORY_MAX_BYTES`: the memory store's bound over all rooms. */
  maxBytes: number;
  /** `HISTORY_PAGE_BYTES`: most bytes of messages in one `history` reply. */
  pageBytes: number;
  /** `DEDUP_WINDOW_SEC` in ms: how long a publish `id` or `idempotencyKey` is remembered. */
  dedupeWindowMs: number;
}

/** The `presence` section of {@linkcode Config}. */
export interface PresenceConfig {
  /** `PRESENCE`: whether rooms track presence unless a policy rule says otherwise. Dev mode: on unless set. */
  enabled: boolean;
  /** `PRESENCE_DIFF_MS`: trailing-edge window of `presence_diff` batching. */
  diffMs: number;
  /** `PRESENCE_MAX_MEMBERS`: above this many users a room's state is truncated and its diffs carry only the count. */
  maxMembers: number;
  /** `PRESENCE_TTL_MS`: an instance not heard from (or whose store entries were not refreshed) for this long is gone. */
  ttlMs: number;
}

/** The `store` section of {@linkcode Config}. */
export interface StoreConfig {
  /** `STORE`: default `redis` with `BUS=redis`, `kv` with `BUS=kv` or on Deno Deploy, else `memory`. */
  kind: StoreKind;
  /** The Redis server of `STORE=redis`, `HISTORY_STORE=redis` and `BUS=redis`; undefined without `REDIS_URL`. */
  redis: RedisConfig | undefined;
  /** The Deno KV database of `STORE=kv` and `BUS=kv`. */
  kv: KvConfig;
}

/**
 * A Redis primary found through Sentinel: `REDIS_SENTINELS`,
 * `REDIS_SENTINEL_NAME`, `REDIS_SENTINEL_PASSWORD`, `REDIS_PASSWORD`.
 */
export interface RedisSentinelConfig {
  /** `REDIS_SENTINELS`: the sentinels asked, in order, which node is the primary. */
  sentinels: { host: string; port: number }[];
  /** `REDIS_SENTINEL_NAME`: the primary's name in the sentinels' `monitor` line. */
  name: string;
  /** `REDIS_SENTINEL_PASSWORD`: AUTH for the sentinels. */
  sentinelPassword: string | undefined;
  /** `REDIS_PASSWORD`: AUTH for the primary. */
  password: string | undefined;
}

/** A Redis Cluster: `REDIS_CLUSTER_NODES`, `REDIS_PASSWORD`. */
export interface RedisClusterConfig {
  /** `REDIS_CLUSTER_NODES`: nodes asked, in turn, which primary serves which slots. */
  cluster: { host: string; port: number }[];
  /** `REDIS_PASSWORD`: AUTH for every node. */
  password: string | undefined;
}

/**
 * Where Redis is: a `redis://`/`rediss://` URL, a primary found through
 * Sentinel, or a Cluster.
 */
export type RedisTarget = string | RedisSentinelConfig | RedisClusterConfig;

/** A Redis server (`store.redis`). */
export interface RedisConfig {
  /** `REDIS_URL` (`redis://` or `rediss://`), the Sentinel variables, or `REDIS_CLUSTER_NODES`. */
  url: RedisTarget;
  /** `BUS_CHANNEL`: the prefix of every key and channel. */
  prefix: string;
}

/** A Deno KV database (`store.kv`). */
export interface KvConfig {
  /** `KV_PATH`: a file, `:memory:`, or undefined for Deno Deploy's managed database. */
  path: string | undefined;
  /** `BUS_CHANNEL`: the first part of every key. */
  prefix: string;
}

/** The `bus` section of {@linkcode Config}. */
export interface BusConfig {
  /** `BUS`: the transport; default `broadcast`, `kv` on Deno Deploy. */
  kind: BusKind;
  /** `BUS_CHANNEL`: BroadcastChannel name, Redis channel prefix, KV key prefix. */
  channel: string;
}

/** The `admin` section of {@linkcode Config}. */
export interface AdminConfig {
  /** `API_KEY`: a bearer key for the publish and revoke APIs and the admin page. */
  apiKey: string | undefined;
  /** `ADMIN_ROLE`: a JWT whose `roles` holds this role may do what `API_KEY` may. */
  role: string | undefined;
  /** `METRICS_TOKEN`: when set, `/metrics` needs it as a bearer token. */
  metricsToken: string | undefined;
}

/** One Pusher app's credentials (`PUSHER_APP_ID`, `PUSHER_APP_KEY`, `PUSHER_APP_SECRET`). */
export interface PusherCredentials {
  /** The app id, in the HTTP API's paths (`/apps/{id}/events`). */
  id: string;
  /** The public key, in the WebSocket path (`/app/{key}`) and in signatures. */
  key: string;
  /** The shared secret that signs channel auth, API requests and webhooks. */
  secret: string;
}

/** The `pusher` section of {@linkcode Config}. Without any app the Pusher endpoints answer 404. */
export interface PusherConfig {
  /** The app named by the three `PUSHER_APP_*` variables, with Pusher's defaults. */
  app: PusherCredentials | undefined;
  /** `PUSHER_APPS_FILE`: a JSON array of apps, read and validated at start-up. */
  appsFile: string | undefined;
  /** Dev mode: also the app `app-id` / `app-key` / `app-secret`, printed at start. */
  devApp: boolean;
}

/** The `tls` section of {@linkcode Config}: `TLS_CERT_FILE` and `TLS_KEY_FILE`. */
export interface TlsConfig {
  /** `TLS_CERT_FILE`: PEM certificate chain. */
  certFile: string;
  /** `TLS_KEY_FILE`: PEM private key of the certificate. */
  keyFile: string;
}

/** The `webhooks` section of {@linkcode Config}. */
export interface WebhooksConfig {
  /** `WEBHOOK_URL`: the receivers (none: webhooks are off). */
  urls: string[];
  /** `WEBHOOK_EVENTS`: the events sent; default every one but `connection_closed`. */
  events: NativeEventName[];
  /** `WEBHOOK_SECRET`: signs every batch; required with a URL. */
  secret: string | undefined;
  /** `WEBHOOK_TIMEOUT_MS`: deadline of one POST, answer included. */
  timeoutMs: number;
  /** `WEBHOOK_RETRY_SEC` in ms: how long an event is retried before it is dropped. */
  retryMs: number;
  /** `WEBHOOK_QUEUE_MAX`: most events queued per URL; past it the oldest are dropped. */
  queueMax: number;
}

/** The `hooks` section of {@linkcode Config}: the `HOOK_*` variables. */
export interface HooksConfig {
  /** `HOOK_CONNECT_URL`, `HOOK_JOIN_URL`, `HOOK_PUBLISH_URL`, `HOOK_RPC_URL` (unset: that hook is off). */
  urls: {
    connect: string | undefined;
    join: string | undefined;
    publish: string | undefined;
    rpc: string | undefined;
  };
  /** `HOOK_CONNECT_FAIL`: `closed` refuses a connect with 503 when its hook fails; `open` lets it in. */
  connectFail: "closed" | "open";
  /** `WEBHOOK_SECRET`: signs every hook request; required with a hook URL. */
  secret: string | undefined;
  /** `HOOK_TIMEOUT_MS`: deadline of one call, answer body included. */
  timeoutMs: number;
  /** `HOOK_CONCURRENCY`: calls in flight per hook; past it a call fails at once. */
  concurrency: number;
  /** `HOOK_BREAKER_FAILURES`: consecutive failures that open a hook's circuit breaker. */
  breakerFailures: number;
  /** `HOOK_BREAKER_COOLDOWN_MS`: how long an open breaker answers at once before one trial call. */
  breakerCooldownMs: number;
}

/** The `internal` section of {@linkcode Config}: process flags set by launchers and tests. */
export interface InternalConfig {
  /** `REALTIME_SERVE_MODE`, set by `deno task start:parallel`: `deno serve` owns the listener, main.ts must not call Deno.serve. */
  serveMode: boolean;
  /** `REALTIME_REUSE_PORT`, set by `deno task start:parallel` with TLS: one worker per core, each listening with SO_REUSEPORT. */
  reusePort: boolean;
  /**
   * `REALTIME_WATCH`, set by `deno task dev`: `deno run --watch` runs main.ts
   * in its own process and keeps running when main.ts exits, so main.ts
   * leaves SIGINT/SIGTERM to their default (the process ends at once).
   */
  watch: boolean;
  /** `DENO_JOBS`: isolates under `deno task start:parallel` (default: one per CPU). */
  jobs: number | undefined;
  /** `BUS_TEST_DROP_RATE`, tests only: the fraction of outgoing broadcast envelopes dropped (DENO_ENV=test). */
  busTestDropRate: number;
}

// ---------------------------------------------------------------------------
// Errors: every one at once, one line per variable.

/** One configuration mistake. */
export interface ConfigIssue {
  /** The environment variable at fault. */
  variable: string;
  /** What is wrong with it (without the variable's name). */
  message: string;
}

/**
 * One or more configuration values were missing or invalid. `message` has
 * one line per variable, each `VARIABLE: what is wrong`.
 */
export class ConfigError extends Error {
  /** The (first) environment variable at fault. */
  readonly variable: string;
  /** Every mistake found, one per variable, in the order of {@linkcode EnvSchema}. */
  readonly issues: readonly ConfigIssue[];
  /** @param variable the environment variable @param detail what is wrong with it */
  constructor(variable: string, detail: string);
  /** @param issues every mistake found (at least one) */
  constructor(issues: readonly ConfigIssue[]);
  constructor(variableOrIssues: string | readonly ConfigIssue[], detail = "invalid") {
    const issues = typeof variableOrIssues === "string"
      ? [{ variable: variableOrIssues, message: detail }]
      : variableOrIssues;
    super(issues.map((i) => `${i.variable}: ${i.message}`).join("\n"));
    this.name = "ConfigError";
    this.issues = issues;
    this.variable = issues[0]?.variable ?? "config";
  }
}

/** One `config error: VARIABLE: ...` line per issue: what start-up prints before exiting 1. */
export function configErrorLines(err: ConfigError): string[] {
  return err.issues.map((i) => `config error: ${i.variable}: ${i.message}`);
}

/**
 * Validates an environment into a {@linkcode Config}. Empty strings count as
 * unset, so `FOO=` in a shell falls back to the default.
 *
 * @throws {ConfigError} naming every bad variable, one line each
 * @example
 * ```ts
 * import { loadConfig } from "./config.ts";
 * const config = loadConfig({ JWT_SECRET: "x".repeat(32), PORT: "0" });
 * ```
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = parseEnv(env);
  if (!parsed.ok) throw new ConfigError(parsed.issues);
  return toConfig(parsed.env);
}

/** Reads the process environment (the one place that does). Needs `--allow-env`. */
export function loadConfigFromEnv(): Config {
  return loadConfig(Deno.env.toObject());
}
