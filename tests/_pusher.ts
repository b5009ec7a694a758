/**
 * Pusher test helpers: a test server with one Pusher app, `pusher-js` (its
 * Node build) clients that sign their subscriptions and signins with the
 * `pusher` server SDK, and waits for their events.
 *
 * @module
 */
import PusherModule from "pusher-js";
import type * as PusherTypes from "pusher-js";
import PusherServer from "pusher";
import { startServer, type TestServer } from "./_helpers.ts";
import type { ServerOptions } from "../lib/server.ts";

// Deno types the CommonJS package's default export as its module; at runtime it is the class.
type PusherClass = typeof PusherTypes.default.default;
type Options = ConstructorParameters<PusherClass>[1];

/** The `pusher-js` client class. */
export const Pusher = PusherModule as unknown as PusherClass;
/** A `pusher-js` client. */
export type Pusher = InstanceType<PusherClass>;
/** A `pusher-js` channel. */
export type PusherChannel = ReturnType<Pusher["subscribe"]>;

/** The test app. */
export const APP = { id: "app-1", key: "key-1", secret: "secret-of-app-1-0123456789" } as const;

/** The variables of the test app. */
export const APP_ENV: Record<string, string> = {
  PUSHER_APP_ID: APP.id,
  PUSHER_APP_KEY: APP.key,
  PUSHER_APP_SECRET: APP.secret,
};

/** The server SDK, signing for the test app (or another secret). */
export function serverSdk(port: number, secret: string = APP.secret): PusherServer {
  return new PusherServer({
    appId: APP.id,
    key: APP.key,
    secret,
    host: "127.0.0.1",
    port: String(port),
    useTLS: false,
  });
}

/**
 * A test server with the test app; `env` adds or overrides variables. With
 * `app`, the test app comes from an apps file with these options instead.
 */
export async function startPusherServer(
  env: Record<string, string> = {},
  app?: Record<string, unknown>,
  options: Omit<ServerOptions, "config"> = {},
): Promise<TestServer> {
  if (app === undefined) return await startServer({ ...APP_ENV, ...env }, options);
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(file, JSON.stringify([{ ...APP, ...app }]));
    // Apps are read at start-up: the file is not needed afterwards.
    return await startServer({ PUSHER_APPS_FILE: file, ...env }, options);
  } finally {
    await Deno.remove(file);
  }
}

/** Options for {@linkcode connectPusher}. */
export interface ConnectOptions {
  /** Who signs subscriptions: the server SDK (with this secret). @default the app's */
  secret?: string;
  /** `channel_data` of presence subscriptions. */
  presence?: { user_id: string | number; user_info?: unknown };
  /** `user_data` for `signin()`. */
  user?: { id: string | number; [key: string]: unknown };
  /** The app key. @default the test app's */
  key?: string;
  /** Extra `pusher-js` options. */
  options?: Partial<Options>;
}

/**
 * A `pusher-js` client of `ts`, connected (resolves once `connected`), that
 * signs subscriptions (and its signin) with the server SDK.
 */
export async function connectPusher(
  ts: { readonly port: number },
  options: ConnectOptions = {},
): Promise<Pusher> {
  const sdk = serverSdk(ts.port, options.secret);
  const client = new Pusher(options.key ?? APP.key, {
    cluster: "mt1",
    wsHost: "127.0.0.1",
    wsPort: ts.port,
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    channelAuthorization: {
      endpoint: "/unused",
      transport: "ajax",
      customHandler: ({ socketId, channelName }, callback) => {
        const member = channelName.startsWith("presence-") ? options.presence : undefined;
        const presence = member === undefined ? undefined : {
          user_id: member.user_id as string,
          ...(member.user_info === undefined
            ? {}
            : { user_info: member.user_info as Record<string, unknown> }),
        };
        callback(null, sdk.authorizeChannel(socketId, channelName, presence));
      },
    },
    userAuthentication: {
      endpoint: "/unused",
      transport: "ajax",
      customHandler: ({ socketId }, callback) => {
        const user = options.user ?? { id: "nobody" };
        callback(null, sdk.authenticateUser(socketId, user as { id: string }));
      },
    },
    ...options.options,
  });
  await waitState(client, "connected");
  return client;
}

/** Resolves when the client's connection reaches `state`. */
export function waitState(client: Pusher, state: string, timeoutMs = 5000): Promise<void> {
  if (client.connection.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.connection.unbind("state_change", onChange);
      reject(new Error(`connection stayed ${client.connection.state}, not ${state}`));
    }, timeoutMs);
    const onChange = ({ current }: { current: string }) => {
      if (current !== state) return;
      clearTimeout(timer);
      client.connection.unbind("state_change", onChange);
      resolve();
    };
    client.connection.bind("state_change", onChange);
  });
}

/** Resolves with the data of the next `event` on `channel` (or the client when no channel). */
export function nextEvent<T = unknown>(
  target: {
    bind(event: string, fn: (data: T) => void): unknown;
    unbind(event: string, fn: (data: T) => void): unknown;
  },
  event: string,
  timeoutMs = 5000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      target.unbind(event, onEvent);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onEvent = (data: T) => {
      clearTimeout(timer);
      target.unbind(event, onEvent);
      resolve(data);
    };
    target.bind(event, onEvent);
  });
}

/** Subscribes and resolves once `pusher:subscription_succeeded` arrives (with its data). */
export async function subscribed(client: Pusher, channel: string): Promise<PusherChannel> {
  const ch = client.subscribe(channel);
  await nextEvent(ch, "pusher:subscription_succeeded");
  return ch;
}

/** Disconnects and waits until the socket is closed. */
export async function disconnect(client: Pusher): Promise<void> {
  if (client.connection.state === "disconnected") return;
  const closed = waitState(client, "disconnected");
  client.disconnect();
  await closed;
}

/** Every event a channel receives, in order (`bind_global`). */
export function recordChannel(ch: PusherChannel): { event: string; data: unknown }[] {
  const seen: { event: string; data: unknown }[] = [];
  ch.bind_global((event: string, data: unknown) => {
    if (!event.startsWith("pusher")) seen.push({ event, data });
  });
  return seen;
}

/** A raw WebSocket on the Pusher front door, for what `pusher-js` hides (close codes, frames). */
export interface RawPusher extends AsyncDisposable {
  readonly ws: WebSocket;
  /** Every parsed frame received so far. */
  readonly frames: { event: string; channel?: string; data?: unknown }[];
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Sends a frame (an object is serialized). */
  send(frame: unknown): void;
  /** Resolves with the first frame (already received or to come) with this event. */
  next(
    event: string,
    timeoutMs?: number,
  ): Promise<{ event: string; channel?: string; data?: unknown }>;
}

/** Opens a raw socket on `path` (default `/app/<key>?protocol=7`). */
export function rawPusher(ts: TestServer, path = `/app/${APP.key}?protocol=7`): RawPusher {
  const ws = new WebSocket(`ws://127.0.0.1:${ts.port}${path}`);
  const frames: { event: string; channel?: string; data?: unknown }[] = [];
  const waiters = new Set<() => void>();
  ws.onmessage = (e) => {
    frames.push(JSON.parse(String(e.data)));
    for (const wake of waiters) wake();
  };
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.onclose = (e) => resolve({ code: e.code, reason: e.reason });
  });
  const next = (event: string, timeoutMs = 5000) =>
    new Promise<{ event: string; channel?: string; data?: unknown }>((resolve, reject) => {
      const check = () => {
        const found = frames.find((f) => f.event === event);
        if (found === undefined) return false;
        waiters.delete(wake);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const wake = () => void check();
      const timer = setTimeout(() => {
        waiters.delete(wake);
        reject(new Error(`no ${event} within ${timeoutMs} ms; got ${JSON.stringify(frames)}`));
      }, timeoutMs);
      if (!check()) waiters.add(wake);
    });
  return {
    ws,
    frames,
    closed,
    next,
    send: (frame) => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)),
    async [Symbol.asyncDispose]() {
      if (ws.readyState !== WebSocket.CLOSED) ws.close();
      await closed;
    },
  };
}

/** The socket id a raw socket was told. */
export async function rawSocketId(raw: RawPusher): Promise<string> {
  const established = await raw.next("pusher:connection_established");
  return JSON.parse(String(established.data)).socket_id;
}
