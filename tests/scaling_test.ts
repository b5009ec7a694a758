/**
 * Scaling out, end to end: real server processes talking through the bus.
 * `deno serve --parallel` isolates over BroadcastChannel, and separate
 * processes over one Redis, including a Redis outage and recovery.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Client,
  connect,
  eventually,
  join,
  type Msg,
  SECRET,
  sleep,
  token,
} from "./_helpers.ts";
import { type ServerProcess, spawnParallel, startAll } from "./_process.ts";
import { redisTest, startRedisNode } from "./_redis.ts";

/** Channel names unique per test, so that no two servers of different tests share traffic. */
function channel(): string {
  return `scaling-${crypto.randomUUID()}`;
}

const BASE_ENV = {
  JWT_SECRET: SECRET,
  HOSTNAME: "127.0.0.1",
  LOG_LEVEL: "error",
  // The ordering test sends 200 frames in one burst; the default bucket holds 50.
  RATE_LIMIT_CAPACITY: "1000",
  // Reaching both isolates of `--parallel` may take many connection attempts.
  HANDSHAKES_PER_MINUTE_PER_IP: "100000",
};

/**
 * `deno task start:parallel` as users run it, pinned to two isolates. On
 * SIGTERM `deno serve` stops its listener and main.ts shuts the isolates
 * down; the 3 s SIGKILL fallback only ends a launcher that hangs.
 */
function startParallel(busChannel: string): Promise<ServerProcess> {
  return spawnParallel({ ...BASE_ENV, BUS: "broadcast", BUS_CHANNEL: busChannel });
}

/** `deno task start` on the Redis bus. */
function startNode(redisUrl: string, busChannel: string): Promise<ServerProcess> {
  return startRedisNode(redisUrl, busChannel, { env: BASE_ENV });
}

/**
 * A TCP proxy in front of Redis that holds every byte going to Redis for
 * `delayMs` (replies come back at once). On loopback a SUBSCRIBE reaches
 * Redis long before any round trip through a client and another node, so a
 * server that answered `joined` without waiting for the acknowledgement would
 * still pass; behind this proxy it would lose the next message.
 */
class SlowLinkProxy implements AsyncDisposable {
  readonly port: number;
  readonly #listener: Deno.TcpListener;
  readonly #conns = new Set<Deno.TcpConn>();
  readonly #tasks = new Set<Promise<void>>();

  constructor(targetPort: number, delayMs: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = this.#listener.addr.port;
    this.#track(this.#accept(targetPort, delayMs));
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    this.#listener.close();
    for (const conn of this.#conns) closeQuietly(conn);
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #track(task: Promise<void>): void {
    const settled = task.catch(() => {}).finally(() => this.#tasks.delete(settled));
    this.#tasks.add(settled);
  }

  async #accept(targetPort: number, delayMs: number): Promise<void> {
    for await (const client of this.#listener) {
      this.#conns.add(client);
      let upstream: Deno.TcpConn;
      try {
        upstream = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
      } catch {
        closeQuietly(client);
        continue;
      }
      this.#conns.add(upstream);
      const both = () => {
        closeQuietly(client);
        closeQuietly(upstream);
      };
      this.#track(pipe(client, upstream, delayMs).finally(both));
      this.#track(pipe(upstream, client, 0).finally(both));
    }
  }
}

/** Copies `from` to `to`, each chunk written `delayMs` after it was read, in order. */
async function pipe(from: Deno.TcpConn, to: Deno.TcpConn, delayMs: number): Promise<void> {
  let writes = Promise.resolve();
  try {
    for await (const chunk of from.readable) {
      const due = performance.now() + delayMs;
      writes = writes.then(async () => {
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        for (let written = 0; written < chunk.length;) {
          written += await to.write(chunk.subarray(written));
        }
      });
    }
  } finally {
    await writes.catch(() => {});
  }
}

function closeQuietly(conn: Deno.TcpConn): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

async function closeAll(clients: Client[]): Promise<void> {
  await Promise.allSettled(clients.map((c) => c.close()));
}

interface Health {
  status: string;
  instanceId: string;
  bus: { status: string; transport: string; gaps: number; dropped: number; detail?: string };
}

async function health(server: ServerProcess): Promise<Health> {
  const res = await fetch(`${server.httpUrl}/healthz`);
  return await res.json() as Health;
}

async function metric(server: ServerProcess, name: string): Promise<number> {
  const res = await fetch(`${server.httpUrl}/metrics`);
  const text = await res.text();
  const value = new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1];
  if (value === undefined) throw new Error(`no ${name} in /metrics:\n${text}`);
  return Number(value);
}

function busUp(server: ServerProcess): Promise<number> {
  return metric(server, "realtime_bus_up");
}

async function waitForHealth(
  servers: ServerProcess[],
  status: "ok" | "degraded",
  timeoutMs: number,
): Promise<void> {
  await eventually(
    async () => (await Promise.all(servers.map(health))).every((h) => h.status === status),
    timeoutMs,
    `/healthz status ${status} on every node`,
  );
}

/** A client of a server process, connected as `sub`. */
async function connectTo(
  server: ServerProcess,
  sub: string,
): Promise<{ client: Client; welcome: Msg }> {
  return await connect(`${server.wsUrl}?token=${await token(sub)}`);
}

function isMessage(m: Msg): boolean {
  return m.type === "message";
}

/** Room messages still queued in a client's inbox. */
function queuedMessages(client: Client): Msg[] {
  return client.inbox.filter(isMessage);
}

/** Waits for the room message with this payload tag. */
function nextTagged(client: Client, tag: string, timeoutMs = 5000): Promise<Msg> {
  return client.next(
    (m) => isMessage(m) && (m.payload as { tag?: unknown } | null)?.tag === tag,
    timeoutMs,
  );
}

/**
 * Lets late duplicates arrive: a ping round trip on every client (so frames
 * already sent to it are in), then a pause for envelopes still on the bus.
 */
async function settle(clients: Client[], ms = 200): Promise<void> {
  await Promise.all(
    clients.map((c, i) => c.request({ type: "ping", id: `settle-${i}-${crypto.randomUUID()}` })),
  );
  await sleep(ms);
}

Deno.test("parallel: clients on different isolates get each other's room messages once", async () => {
  await using server = await startParallel(channel());
  const clients: Client[] = [];
  try {
    const h = await health(server);
    assert.equal(h.bus.transport, "broadcast");
    assert.equal(await busUp(server), 1);

    // `deno serve --parallel` hands each new connection to one of its
    // isolates: retry until two clients land on different ones. Isolates start
    // independently, so under load the second may take connections only a
    // while after /healthz first answered: hence the pause.
    let first: { client: Client; instanceId: unknown } | undefined;
    let second: { client: Client; instanceId: unknown } | undefined;
    const landed: unknown[] = [];
    const deadline = Date.now() + 20_000;
    for (let attempt = 0; Date.now() < deadline && second === undefined; attempt++) {
      const { client, welcome } = await connectTo(server, `user-${attempt}`);
      landed.push(welcome.instanceId);
      if (first === undefined) {
        first = { client, instanceId: welcome.instanceId };
        clients.push(client);
      } else if (welcome.instanceId !== first.instanceId) {
        second = { client, instanceId: welcome.instanceId };
        clients.push(client);
      } else {
        await client.close();
        await sleep(100);
      }
    }
    assert.ok(
      first !== undefined && second !== undefined,
      `no two clients on different isolates within 20 s: ${JSON.stringify(landed)}`,
    );
    const a = first.client;
    const b = second.client;
    await join(a, "room");
    await join(b, "room");

    a.send({ type: "message", room: "room", payload: { tag: "from-a" }, id: "a1" });
    b.send({ type: "message", room: "room", payload: { tag: "from-b" }, id: "b1" });
    for (const client of [a, b]) {
      await nextTagged(client, "from-a");
      await nextTagged(client, "from-b");
    }
    await a.next((m) => m.type === "ack" && m.id === "a1");
    await b.next((m) => m.type === "ack" && m.id === "b1");
    await settle([a, b]);
    assert.deepEqual(queuedMessages(a), [], "duplicates on the first isolate");
    assert.deepEqual(queuedMessages(b), [], "duplicates on the second isolate");

    // SIGTERM reaches every isolate: clients hear 1001 (from `deno serve`
    // itself or from our shutdown, whichever is first) and the launcher exits
    // cleanly, with no SIGKILL needed.
    const status = await server.stop();
    assert.equal((await a.closed).code, 1001);
    assert.equal((await b.closed).code, 1001);
    assert.equal(status.code, 0, "start:parallel exits 0 on SIGTERM");
  } finally {
    await closeAll(clients);
  }
  await assert.rejects(fetch(`${server.httpUrl}/healthz`), "a server process outlived stop()");
});

redisTest(
  "redis: two processes deliver across, once each, in order per publisher",
  async (redis) => {
    const busChannel = channel();
    // A talks to Redis over a slow link, so that its subscriptions lag behind B's publishes.
    await using slowLink = new SlowLinkProxy(redis.port, 50);
    await using nodes = await startAll([
      startNode(slowLink.url, busChannel),
      startNode(redis.url, busChannel),
    ]);
    const [nodeA, nodeB] = nodes;
    const clients: Client[] = [];
    try {
      const publisher = (await connectTo(nodeA, "publisher")).client;
      clients.push(publisher);
      const subscriber = (await connectTo(nodeB, "subscriber")).client;
      clients.push(subscriber);
      await join(subscriber, "ordered");
      await join(publisher, "ordered");

      const count = 200;
      // Sent in one burst, without waiting for acks, so order is not forced by the test.
      for (let n = 1; n <= count; n++) {
        publisher.send({ type: "message", room: "ordered", payload: { n }, id: `p${n}` });
      }
      const seen = (c: Client) => queuedMessages(c).length >= count;
      await eventually(() => seen(subscriber) && seen(publisher), 10_000, "200 messages on each");
      await settle([publisher, subscriber]);
      const numbers = (c: Client) => queuedMessages(c).map((m) => (m.payload as { n: number }).n);
      const expected = Array.from({ length: count }, (_, i) => i + 1);
      assert.deepEqual(numbers(subscriber), expected, "subscriber on the other process");
      assert.deepEqual(numbers(publisher), expected, "publisher's own copies");
      assert.ok(queuedMessages(subscriber).every((m) => m.from === "publisher"));
      publisher.inbox.length = 0;
      subscriber.inbox.length = 0;

      // A join acknowledged on A means A's subscription is in place: a message
      // published on B right after must arrive. Fresh rooms each time, so every
      // round exercises a new SUBSCRIBE.
      const early = (await connectTo(nodeB, "early")).client;
      clients.push(early);
      const late = (await connectTo(nodeA, "late")).client;
      clients.push(late);
      for (let round = 0; round < 20; round++) {
        const room = `fresh-${round}`;
        await join(early, room);
        await join(late, room);
        early.send({ type: "message", room, payload: { tag: room } });
        await nextTagged(late, room);
        await nextTagged(early, room);
      }
      await settle([early, late]);
      assert.deepEqual(queuedMessages(late), []);
      assert.deepEqual(queuedMessages(early), []);

      for (const node of [nodeA, nodeB]) assert.equal((await health(node)).bus.gaps, 0);
    } finally {
      await closeAll(clients);
    }
  },
);

redisTest(
  "redis: an outage degrades to local delivery and recovers without restarts",
  async (redis) => {
    const busChannel = channel();
    await using nodes = await startAll([
      startNode(redis.url, busChannel),
      startNode(redis.url, busChannel),
    ]);
    const [nodeA, nodeB] = nodes;
    const clients: Client[] = [];
    try {
      const nodes = [nodeA, nodeB];
      const a1 = (await connectTo(nodeA, "a1")).client;
      const a2 = (await connectTo(nodeA, "a2")).client;
      const b1 = (await connectTo(nodeB, "b1")).client;
      const b2 = (await connectTo(nodeB, "b2")).client;
      const all = [a1, a2, b1, b2];
      clients.push(...all);
      for (const c of all) await join(c, "room");
      for (const node of nodes) {
        const h = await health(node);
        assert.equal(h.status, "ok");
        assert.deepEqual(h.bus, { status: "ok", transport: "redis", gaps: 0, dropped: 0 });
        assert.equal(await busUp(node), 1);
      }

      a1.send({ type: "message", room: "room", payload: { tag: "before" } });
      for (const c of all) await nextTagged(c, "before");

      await redis.stop();
      // Publishes are only dropped cleanly once a node knows Redis is gone.
      await waitForHealth(nodes, "degraded", 10_000);
      for (const node of nodes) {
        const h = await health(node);
        assert.equal(h.bus.status, "degraded");
        assert.equal(h.bus.transport, "redis");
        assert.equal(h.bus.detail, undefined, "the public /healthz names no address");
        assert.equal(await busUp(node), 0);
      }

      a1.send({ type: "message", room: "room", payload: { tag: "local-a" }, id: "la" });
      b1.send({ type: "message", room: "room", payload: { tag: "local-b" }, id: "lb" });
      for (const c of [a1, a2]) await nextTagged(c, "local-a");
      for (const c of [b1, b2]) await nextTagged(c, "local-b");
      await a1.next((m) => m.id === "la" && m.type === "ack");
      await b1.next((m) => m.id === "lb" && m.type === "ack");
      for (const node of nodes) {
        assert.ok((await health(node)).bus.dropped >= 1, "the outage's publish is counted");
        assert.ok(await metric(node, "realtime_bus_dropped_total") >= 1);
      }
      // Rooms first joined during the outage must be subscribed by the reconnect.
      await join(a2, "joined-while-down");
      await join(b2, "joined-while-down");
      // Long enough for several failed reconnects, so recovery goes through the back-off.
      await sleep(1500);

      await redis.restart();
      await waitForHealth(nodes, "ok", 15_000);
      for (const node of nodes) assert.equal(await busUp(node), 1);

      a1.send({ type: "message", room: "room", payload: { tag: "after-a" } });
      b1.send({ type: "message", room: "room", payload: { tag: "after-b" } });
      a2.send({ type: "message", room: "joined-while-down", payload: { tag: "late-a" } });
      b2.send({ type: "message", room: "joined-while-down", payload: { tag: "late-b" } });
      for (const c of all) {
        await nextTagged(c, "after-a");
        await nextTagged(c, "after-b");
      }
      for (const c of [a2, b2]) {
        await nextTagged(c, "late-a");
        await nextTagged(c, "late-b");
      }
      await settle(all);
      // Nothing from the outage leaked across late, and nothing arrived twice.
      for (const c of all) assert.deepEqual(queuedMessages(c), []);
      // Publishes dropped during the outage are not stamped, so receivers see no gap.
      for (const node of nodes) assert.equal((await health(node)).bus.gaps, 0);
    } finally {
      await closeAll(clients);
    }
  },
);
