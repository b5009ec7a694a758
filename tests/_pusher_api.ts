/**
 * Helpers for the Pusher HTTP API tests: a {@linkcode PusherChannels} that
 * records what the API asked of it, the API behind the real router on a
 * real port, the `pusher` SDK pointed at it, and requests signed by hand
 * (to send what the SDK refuses to: 101 channels, a wrong version).
 *
 * @module
 */
import { createHash, createHmac } from "node:crypto";
import Pusher from "pusher";
import { MemoryAuditSink } from "../lib/audit.ts";
import type { Clock } from "../lib/clock.ts";
import { systemClock } from "../lib/clock.ts";
import { denoUpgrade } from "../lib/edge/types.ts";
import { createRouter } from "../lib/http/router.ts";
import { Counters } from "../lib/metrics.ts";
import { pusherApiRoutes } from "../lib/protocols/pusher/api_routes.ts";
import { type PusherApp, PusherApps } from "../lib/protocols/pusher/apps.ts";
import type {
  ChannelState,
  PusherChannels,
  TriggeredEvent,
} from "../lib/protocols/pusher/types.ts";

/** The test app. */
export const APP = { id: "4242", key: "test-key", secret: "test-secret-0123456789abcdef" };

/** A {@linkcode PusherChannels} that records triggers and terminations and answers set state. */
export class RecordingChannels implements PusherChannels {
  readonly triggered: { app: string; event: TriggeredEvent }[] = [];
  readonly terminated: { app: string; user: string }[] = [];
  /** Channel states the reads answer (absent: unoccupied). */
  readonly states = new Map<string, ChannelState>();
  /** Presence channels' user ids. */
  readonly members = new Map<string, string[]>();

  trigger(app: PusherApp, event: TriggeredEvent): Promise<void> {
    this.triggered.push({ app: app.id, event: structuredClone(event) });
    return Promise.resolve();
  }
  channel(_app: PusherApp, channel: string): Promise<ChannelState> {
    return Promise.resolve(
      this.states.get(channel) ?? { occupied: false, subscriptionCount: 0 },
    );
  }
  channels(_app: PusherApp, prefix: string | undefined): Promise<Map<string, ChannelState>> {
    return Promise.resolve(
      new Map([...this.states].filter(([name]) => prefix === undefined || name.startsWith(prefix))),
    );
  }
  users(_app: PusherApp, channel: string): Promise<string[]> {
    return Promise.resolve(this.members.get(channel) ?? []);
  }
  terminateUser(app: PusherApp, user: string): Promise<void> {
    this.terminated.push({ app: app.id, user });
    return Promise.resolve();
  }
}

/** The API on a real port, with its recording channels. */
export interface PusherApiServer extends AsyncDisposable {
  readonly port: number;
  readonly url: string;
  readonly channels: RecordingChannels;
  readonly audit: MemoryAuditSink;
  readonly counters: Counters;
  /** The `pusher` SDK for `app` (default {@linkcode APP}). */
  sdk(app?: { id: string; key: string; secret: string }): Pusher;
}

/** Serves the API's routes behind the router on port 0. */
export function startPusherApi(
  options: { apps?: unknown[]; clock?: Clock } = {},
): PusherApiServer {
  const { apps = [APP], clock = systemClock } = options;
  const channels = new RecordingChannels();
  const audit = new MemoryAuditSink();
  const counters = new Counters();
  const shutdown = new AbortController();
  const router = createRouter(
    pusherApiRoutes({
      apps: PusherApps.of(apps),
      channels,
      clock,
      audit,
      counters,
      limits: { maxPayloadDepth: 64, bodyTimeoutMs: 5000 },
      shutdownSignal: shutdown.signal,
    }),
    {
      draining: () => false,
      trustProxy: false,
      onError: (err) => console.error(err),
      defaultUpgrade: denoUpgrade,
    },
  );
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (req, info) => router(req, info),
  );
  const port = server.addr.port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    channels,
    audit,
    counters,
    sdk: (app = APP) =>
      new Pusher({
        appId: app.id,
        key: app.key,
        secret: app.secret,
        host: "127.0.0.1",
        port: String(port),
        useTLS: false,
      }),
    async [Symbol.asyncDispose]() {
      shutdown.abort();
      await server.shutdown();
    },
  };
}

/** What {@linkcode signedRequest} may change from a correct request. */
export interface SignOptions {
  app?: { id: string; key: string; secret: string };
  params?: Record<string, string>;
  body?: string;
  /** Seconds added to now for `auth_timestamp`. */
  skewSec?: number;
  authVersion?: string;
  /** Replaces `body_md5` (null: leaves it out). */
  bodyMd5?: string | null;
  /** Replaces the signature. */
  signature?: string;
  /** Sent instead of `body` (after signing `body`). */
  sendBody?: string;
  /** The HTTP client (a fresh one opens a fresh connection). */
  client?: Deno.HttpClient;
}

/**
 * A request signed by hand, as Pusher's docs describe it (independent of the
 * server's code), with one part optionally wrong.
 */
export async function signedRequest(
  baseUrl: string,
  method: "GET" | "POST",
  path: string,
  options: SignOptions = {},
): Promise<{ status: number; body: string }> {
  const { app = APP, params = {}, body, skewSec = 0, authVersion = "1.0" } = options;
  const query: Record<string, string> = {
    auth_key: app.key,
    auth_timestamp: String(Math.floor(Date.now() / 1000) + skewSec),
    auth_version: authVersion,
    ...params,
  };
  const md5 = body === undefined ? undefined : createHash("md5").update(body).digest("hex");
  const bodyMd5 = options.bodyMd5 === undefined ? md5 : options.bodyMd5;
  if (bodyMd5 !== undefined && bodyMd5 !== null) query.body_md5 = bodyMd5;
  const sorted = Object.keys(query).sort().map((k) => `${k}=${query[k]}`).join("&");
  const fullPath = `/apps/${app.id}${path}`;
  const signature = options.signature ??
    createHmac("sha256", app.secret).update(`${method}\n${fullPath}\n${sorted}`).digest("hex");
  const qs = new URLSearchParams({ ...query, auth_signature: signature });
  const sent = options.sendBody ?? body;
  const res = await fetch(`${baseUrl}${fullPath}?${qs}`, {
    method,
    ...(options.client === undefined ? {} : { client: options.client }),
    ...(sent === undefined ? {} : { body: sent, headers: { "content-type": "application/json" } }),
  });
  return { status: res.status, body: await res.text() };
}
