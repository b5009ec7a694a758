/**
 * `deno run -A bench/pusher_fanout.ts [--subscribers=1000] [--messages=300] [--runs=3]`
 *
 * Fan-out CPU per delivery on the Pusher front door next to the native
 * protocol, on one server (`main.ts` in a subprocess): N `pusher-js`
 * clients (the Node build) subscribed to one private channel, one of them
 * sending client events; N native clients in one room, one of them
 * publishing. Runs alternate (native, Pusher, native, …) on fresh
 * connections; the server's CPU time (/proc) per delivery is compared, with
 * the median ratio as the row. Writes bench/results/pusher_fanout.json.
 *
 * @module
 */
import PusherModule from "pusher-js";
import type * as PusherTypes from "pusher-js";
import PusherServer from "pusher";
import { cpuMicros } from "./_proc.ts";
import { BENCH_HS256_SECRET, mintTokens } from "./_tokens.ts";

type PusherClass = typeof PusherTypes.default.default;
type PusherClient = InstanceType<PusherClass>;
// Deno types the CommonJS package's default export as its module; at runtime it is the class.
const Pusher = PusherModule as unknown as PusherClass;

const APP = { id: "bench", key: "bench-key", secret: "bench-secret-0123456789abcdef" };
const ROOM = "bench";
const CHANNEL = "private-bench";
/** Messages in flight: a batch is done when every subscriber has all of it. */
const WINDOW = 10;

function flag(name: string, fallback: number): number {
  const arg = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return arg === undefined ? fallback : Number(arg.slice(name.length + 3));
}

const N = flag("subscribers", 1000);
const MESSAGES = flag("messages", 300);
const RUNS = flag("runs", 3);

/** The server under test, on a free port, with the bench app allowing client events. */
async function startServer(): Promise<
  { port: number; child: Deno.ChildProcess; stop(): Promise<void> }
> {
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
    cwd: new URL("../", import.meta.url).pathname,
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

/** Publishes MESSAGES in windows; returns the server's CPU µs per delivery. */
async function measure(pid: number, tally: Tally, publish: (i: number) => void): Promise<number> {
  const before = await cpuMicros(pid);
  for (let i = 0; i < MESSAGES; i += WINDOW) {
    const batch = Math.min(WINDOW, MESSAGES - i);
    for (let j = 0; j < batch; j++) publish(i + j);
    await tally.reach((i + batch) * N);
  }
  const after = await cpuMicros(pid);
  return (after - before) / (MESSAGES * N);
}

async function nativeRun(port: number, pid: number, tokens: readonly string[]): Promise<number> {
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

async function pusherRun(port: number, pid: number): Promise<number> {
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
      pid,
      tally,
      (i) => publisher.trigger("client-tick", { i, pad: "x".repeat(64) }),
    );
  } finally {
    for (const client of clients) client.disconnect();
    await new Promise((r) => setTimeout(r, 500));
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const server = await startServer();
try {
  const tokens = await mintTokens(N + 1, { alg: "HS256", subPrefix: "fan" });
  const native: number[] = [];
  const pusher: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    native.push(await nativeRun(server.port, server.child.pid, tokens));
    pusher.push(await pusherRun(server.port, server.child.pid));
    console.error(
      `run ${run + 1}: native ${native.at(-1)!.toFixed(2)} µs/delivery, pusher-js ${
        pusher.at(-1)!.toFixed(2)
      } µs/delivery`,
    );
  }
  const ratios = native.map((n, i) => pusher[i]! / n);
  const result = {
    subscribers: N,
    messages: MESSAGES,
    runs: RUNS,
    nativeCpuUsPerDelivery: median(native),
    pusherCpuUsPerDelivery: median(pusher),
    ratio: median(ratios),
    target: "<= 1.2",
    met: median(ratios) <= 1.2,
  };
  console.log(
    `| N=${N}: pusher-js on /app/{key} server CPU per delivery vs native /ws | ${
      result.pusherCpuUsPerDelivery.toFixed(2)
    } µs vs ${result.nativeCpuUsPerDelivery.toFixed(2)} µs = ${
      result.ratio.toFixed(2)
    }× | <= 1.2× | ${result.met ? "met" : "missed"} |`,
  );
  await Deno.writeTextFile(
    new URL("./results/pusher_fanout.json", import.meta.url),
    JSON.stringify(result, null, 2) + "\n",
  );
} finally {
  await server.stop();
}
