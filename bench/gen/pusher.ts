/**
 * Generator of the Pusher fan-out rows (bench/scenarios/pusher.ts): one
 * server (`main.ts` in a subprocess) with a bench app; N `pusher-js` clients
 * (the Node build) subscribed to one private channel, one of them sending
 * client events; or N native clients in one room, one of them publishing.
 * Each run measures the server's CPU time (/proc) per delivery.
 *
 * @module
 */
import PusherModule from "pusher-js";
import type * as PusherTypes from "pusher-js";
import PusherServer from "pusher";
import { cpuMicros } from "../_proc.ts";
import { BENCH_HS256_SECRET } from "../_tokens.ts";

type PusherClass = typeof PusherTypes.default.default;
type PusherClient = InstanceType<PusherClass>;
// Deno types the CommonJS package's default export as its module; at runtime it is the class.
const Pusher = PusherModule as unknown as PusherClass;

const APP = { id: "bench", key: "bench-key", secret: "bench-secret-0123456789abcdef" };
const ROOM = "bench";
const CHANNEL = "private-bench";
/** Messages in flight: a batch is done when every subscriber has all of it. */
const WINDOW = 10;

/** Sizes of one Pusher fan-out measurement. */
export interface PusherFanoutParams {
  /** Receiving clients (N); one more client sends. */
  subscribers: number;
  /** Messages per run. */
  messages: number;
}

/** The server under test. */
export interface PusherBenchServer {
  port: number;
  child: Deno.ChildProcess;
  stop(): Promise<void>;
}

/** The server under test, on a free port, with the bench app allowing client events. */
export async function startPusherBenchServer(): Promise<PusherBenchServer> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const apps = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(
    apps,
    JSON.stringify([{ ...APP, enableClientMessages: true, maxClientEventsPerSecond: 100_000 }]),
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", "main.ts"],
    cwd: new URL("../../", import.meta.url).pathname,
    env: {
      PORT: String(port),
      HOSTNAME: "127.0.0.1",
      JWT_SECRET: BENCH_HS256_SECRET,
      LOG_LEVEL: "error",
      BUS: "memory",
      PUSHER_APPS_FILE: apps,
      RATE_LIMIT_CAPACITY: "1000000",
      RATE_LIMIT_REFILL_PER_SEC: "1000000",
      HANDSHAKES_PER_MINUTE_PER_IP: "1000000",
      MAX_CONNECTIONS: "20000",
      MAX_CONNECTIONS_PER_USER: "20000",
    },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      await res.body?.cancel();
      if (res.ok) break;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    child,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(apps);
    },
  };
}

/** Counts deliveries and resolves waits for a total. */
class Tally {
  count = 0;
  #waiters: { target: number; resolve: () => void }[] = [];
  add(): void {
    this.count++;
    this.#waiters = this.#waiters.filter((w) => {
      if (this.count < w.target) return true;
      w.resolve();
      return false;
    });
  }
  reach(target: number, timeoutMs = 60_000): Promise<void> {
    if (this.count >= target) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`stuck at ${this.count}/${target}`)),
        timeoutMs,
      );
      this.#waiters.push({ target, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }
}

/** Publishes the messages in windows; returns the server's CPU µs per delivery. */
async function measure(
  p: PusherFanoutParams,
  pid: number,
  tally: Tally,
  publish: (i: number) => void,
): Promise<number> {
  const { messages, subscribers: n } = p;
  const before = await cpuMicros(pid);
  for (let i = 0; i < messages; i += WINDOW) {
    const batch = Math.min(WINDOW, messages - i);
    for (let j = 0; j < batch; j++) publish(i + j);
    await tally.reach((i + batch) * n);
  }
  const after = await cpuMicros(pid);
  return (after - before) / (messages * n);
}

/** N native clients in one room; server CPU µs per delivery. `tokens` holds N + 1. */
export async function nativeFanoutRun(
  server: PusherBenchServer,
  p: PusherFanoutParams,
  tokens: readonly string[],
): Promise<number> {
  const { port } = server;
  const pid = server.child.pid;
  const N = p.subscribers;
  const tally = new Tally();
  const sockets: WebSocket[] = [];
  try {
    for (let i = 0; i <= N; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${tokens[i]}`);
      sockets.push(ws);
      await new Promise<void>((resolve, reject) => {
        ws.onmessage = (e) => {
          if (String(e.data).includes('"type":"joined"')) {
            ws.onmessage = i === 0 ? null : () => tally.add();
            resolve();
          } else if (String(e.data).includes('"type":"welcome"')) {
            ws.send(JSON.stringify({ type: "join", room: ROOM, id: "j" }));
          }
        };
        ws.onerror = () => reject(new Error("native connect failed"));
      });
    }
    const publisher = sockets[0]!;
    return await measure(
      p,
      pid,
      tally,
      (i) =>
        publisher.send(
          JSON.stringify({ type: "message", room: ROOM, payload: { i, pad: "x".repeat(64) } }),
        ),
    );
  } finally {
    await Promise.all(sockets.map((ws) =>
      new Promise<void>((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.onclose = () => resolve();
        ws.close();
      })
    ));
  }
}

/** N `pusher-js` clients on one private channel; server CPU µs per delivery. */
export async function pusherFanoutRun(
  server: PusherBenchServer,
  p: PusherFanoutParams,
): Promise<number> {
  const { port } = server;
  const pid = server.child.pid;
  const N = p.subscribers;
  const sdk = new PusherServer({
    appId: APP.id,
    key: APP.key,
    secret: APP.secret,
    host: "127.0.0.1",
    port: String(port),
  });
  const tally = new Tally();
  const clients: PusherClient[] = [];
  try {
    for (let i = 0; i <= N; i++) {
      const client = new Pusher(APP.key, {
        cluster: "mt1",
        wsHost: "127.0.0.1",
        wsPort: port,
        forceTLS: false,
        enabledTransports: ["ws"],
        disableStats: true,
        channelAuthorization: {
          endpoint: "/unused",
          transport: "ajax",
          customHandler: ({ socketId, channelName }, callback) =>
            callback(null, sdk.authorizeChannel(socketId, channelName)),
        },
      });
      clients.push(client);
      const channel = client.subscribe(CHANNEL);
      await new Promise<void>((resolve) => channel.bind("pusher:subscription_succeeded", resolve));
      if (i > 0) channel.bind("client-tick", () => tally.add());
    }
    const publisher = clients[0]!.channel(CHANNEL);
    // The sender is never echoed: N deliveries per message, as native's N (the publisher ignores its own).
    return await measure(
      p,
      pid,
      tally,
      (i) => publisher.trigger("client-tick", { i, pad: "x".repeat(64) }),
    );
  } finally {
    for (const client of clients) client.disconnect();
    await new Promise((r) => setTimeout(r, 500));
  }
}
