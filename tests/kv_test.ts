/**
 * Deno KV end to end: real server processes on one KV file. A single node
 * restarted keeps its rooms' history; `deno serve --parallel` isolates share
 * history, tickets and (with `BUS=kv`) live traffic through KV; fault
 * injection on the BroadcastChannel bus is healed by the KV store.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Client,
  collectRoom,
  connect,
  eventually,
  joinRoom,
  type Msg,
  SECRET,
  sleep,
  token,
} from "./_helpers.ts";
import { freePort, type ServerProcess, spawnParallel, spawnServer } from "./_process.ts";

const BASE_ENV = {
  JWT_SECRET: SECRET,
  HOSTNAME: "127.0.0.1",
  LOG_LEVEL: "error",
  RATE_LIMIT_CAPACITY: "1000",
  HISTORY_SIZE: "1000",
  // spread() may need many connection attempts to reach both isolates.
  HANDSHAKES_PER_MINUTE_PER_IP: "100000",
};

/** A KV file in a fresh temporary directory, removed on dispose. */
async function tempKv(): Promise<{ path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "kv-e2e-" });
  return {
    path: `${dir}/realtime.kv`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** `deno task start` on a KV store. */
function startNode(env: Record<string, string>): Promise<ServerProcess> {
  const port = freePort();
  return spawnServer(
    [
      "run",
      "--unstable-kv",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "main.ts",
    ],
    { port, env: { ...BASE_ENV, PORT: String(port), ...env } },
  );
}

function startParallel(env: Record<string, string>): Promise<ServerProcess> {
  return spawnParallel({ ...BASE_ENV, BUS_CHANNEL: `kv-${crypto.randomUUID()}`, ...env });
}

async function connectTo(
  server: ServerProcess,
  sub: string,
): Promise<{ client: Client; welcome: Msg }> {
  return await connect(`${server.wsUrl}?token=${await token(sub)}`);
}

async function publish(client: Client, room: string, payload: unknown): Promise<Msg> {
  const id = `p-${crypto.randomUUID()}`;
  const ack = await client.request({ type: "message", room, payload, id }, 10_000);
  assert.equal(ack.type, "ack", JSON.stringify(ack));
  return ack;
}

Deno.test("kv: a single node restarted on its KV file recovers with since", async () => {
  await using kv = await tempKv();
  let server: ServerProcess | undefined;
  const clients: Client[] = [];
  try {
    const env = { STORE: "kv", KV_PATH: kv.path, BUS: "memory" };
    server = await startNode(env);
    const health = await (await fetch(`${server.httpUrl}/healthz`)).json();
    assert.equal(health.history.transport, "kv");
    assert.deepEqual(health.store, { status: "ok", transport: "kv" });
    const { client } = await connectTo(server, "alice");
    clients.push(client);
    const joined = await joinRoom(client, "chat");
    for (let n = 1; n <= 5; n++) await publish(client, "chat", { n });
    const epoch = joined.epoch;
    await client.close();
    await server.stop();
    server = await startNode(env);
    // 3 more while the client is away, then it comes back with what it had seen.
    const other = (await connectTo(server, "bob")).client;
    clients.push(other);
    await joinRoom(other, "chat");
    for (let n = 6; n <= 8; n++) await publish(other, "chat", { n });
    const back = (await connectTo(server, "alice")).client;
    clients.push(back);
    const got = collectRoom(back, "chat");
    const rejoined = await joinRoom(back, "chat", { offset: 3, epoch });
    assert.deepEqual([rejoined.recovered, rejoined.missed, rejoined.epoch], [true, 5, epoch]);
    await eventually(() => got.length === 5, 5000, "5 replayed messages");
    assert.deepEqual(got.map((m) => m.offset), [4, 5, 6, 7, 8]);
    assert.deepEqual(got.map((m) => (m.payload as { n: number }).n), [4, 5, 6, 7, 8]);
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    // Restarted above, so not `await using`: its clients close first, then it stops.
    await server?.stop();
  }
});

/** A room policy file next to the KV file: `history:*` rooms keep history, others none. */
async function historyPolicy(kvPath: string): Promise<string> {
  const path = `${kvPath.slice(0, kvPath.lastIndexOf("/"))}/policy.json`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      rooms: [{ room: "history:*", users: "*", history: { size: 1000, ttlSec: 600 } }],
    }),
  );
  return path;
}

/** The isolate each client of {@linkcode spread} landed on. */
const instanceOf = new WeakMap<Client, string>();

/** Connects clients until `perIsolate` of them sit on each of two isolates. */
async function spread(server: ServerProcess, perIsolate: number): Promise<Client[][]> {
  const byInstance = new Map<string, Client[]>();
  const extra: Client[] = [];
  // The kernel places connections; under load the second isolate may start
  // taking them only a while after /healthz first answered: try for 20 s.
  const deadline = Date.now() + 20_000;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    const groups = [...byInstance.values()];
    if (groups.length === 2 && groups.every((g) => g.length >= perIsolate)) break;
    const { client, welcome } = await connectTo(server, `user-${attempt}`);
    const id = String(welcome.instanceId);
    instanceOf.set(client, id);
    const group = byInstance.get(id) ?? [];
    if (group.length >= perIsolate || (byInstance.size === 2 && !byInstance.has(id))) {
      extra.push(client);
    } else {
      group.push(client);
      byInstance.set(id, group);
    }
    if (byInstance.size < 2) await sleep(100);
  }
  await Promise.allSettled(extra.map((c) => c.close()));
  const groups = [...byInstance.values()];
  if (groups.length !== 2 || groups.some((g) => g.length < perIsolate)) {
    await Promise.allSettled(groups.flat().map((c) => c.close()));
    throw new Error("could not place clients on two isolates");
  }
  return groups;
}

/**
 * Every client publishes `each` messages at once; every client must then
 * hold all of them exactly once, offsets 1..n contiguous, in one order.
 */
async function publishEverywhere(clients: Client[], room: string, each: number): Promise<void> {
  const got = clients.map((c) => collectRoom(c, room));
  await Promise.all(
    clients.map((c, i) =>
      Promise.all(Array.from({ length: each }, (_, n) => publish(c, room, { from: i, n })))
    ),
  );
  const total = clients.length * each;
  await eventually(() => got.every((g) => g.length >= total), 10_000, `${total} messages each`);
  await sleep(200);
  const order = got[0]!.map((m) => JSON.stringify(m.payload));
  for (const messages of got) {
    assert.deepEqual(messages.map((m) => m.offset), Array.from({ length: total }, (_, i) => i + 1));
    assert.deepEqual(messages.map((m) => JSON.stringify(m.payload)), order, "one order everywhere");
  }
  for (let i = 0; i < clients.length; i++) {
    // Each publisher's own messages keep the order it sent them in (acks were awaited together).
    const mine = order.map((p) => JSON.parse(p)).filter((p) => p.from === i);
    assert.equal(mine.length, each);
  }
}

Deno.test("kv: deno serve --parallel, STORE=kv + BUS=broadcast: 4 publishers on 2 isolates, one order", async () => {
  await using kv = await tempKv();
  await using server = await startParallel({ STORE: "kv", KV_PATH: kv.path, BUS: "broadcast" });
  let groups: Client[][] = [];
  try {
    groups = await spread(server, 2);
    const clients = groups.flat();
    for (const c of clients) await joinRoom(c, "chat");
    await publishEverywhere(clients, "chat", 25);

    // Tickets: issued over one HTTP connection (one isolate), redeemed by
    // WebSockets that land on both; each works once. The kernel, not the
    // test, places each connection: redeem 12, then go on issuing and
    // redeeming (bounded in count and time) until the instance ids in
    // `welcome` show that both isolates have redeemed one.
    const jwt = await token("ticket-user");
    const issue = async (): Promise<string> => {
      const res: Response = await fetch(`${server.httpUrl}/ticket`, {
        method: "POST",
        headers: { authorization: `Bearer ${jwt}` },
      });
      assert.equal(res.status, 200);
      return (await res.json()).ticket;
    };
    const tickets: string[] = [];
    for (let i = 0; i < 12; i++) tickets.push(await issue());
    const landed = new Set<string>();
    const deadline = Date.now() + 20_000;
    for (
      let i = 0;
      i < tickets.length || (landed.size < 2 && i < 200 && Date.now() < deadline);
      i++
    ) {
      const ticket = tickets[i] ?? await issue();
      const { client, welcome } = await connect(`${server.wsUrl}?ticket=${ticket}`);
      landed.add(String(welcome.instanceId));
      assert.equal(welcome.userId, "ticket-user");
      await client.close();
      const again: Response = await fetch(`${server.httpUrl}/ws?ticket=${ticket}`, {
        headers: {
          upgrade: "websocket",
          "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
          "sec-websocket-version": "13",
        },
      });
      await again.body?.cancel();
      assert.equal(again.status, 401, "a ticket works once");
      // Only one isolate so far: give the other a moment to be the one accepting.
      if (i >= tickets.length - 1 && landed.size < 2) await sleep(50);
    }
    assert.equal(landed.size, 2, "redeemed on both isolates");
  } finally {
    await Promise.allSettled(groups.flat().map((c) => c.close()));
  }
});

Deno.test("kv: BUS=kv alone carries plain and history rooms across two isolates", async () => {
  await using kv = await tempKv();
  await using server = await startParallel({
    BUS: "kv",
    KV_PATH: kv.path,
    HISTORY_SIZE: "0",
    ROOM_POLICY: await historyPolicy(kv.path),
  });
  let groups: Client[][] = [];
  try {
    const health = await (await fetch(`${server.httpUrl}/healthz`)).json();
    assert.equal(health.bus.transport, "kv");
    groups = await spread(server, 1);
    const [a, b] = [groups[0]![0]!, groups[1]![0]!];
    // A plain room: no offsets, delivered through the KV log.
    for (const c of [a, b]) await joinRoom(c, "plain");
    const plain = collectRoom(b, "plain");
    for (let n = 1; n <= 20; n++) a.send({ type: "message", room: "plain", payload: { n } });
    await eventually(() => plain.length === 20, 5000, "20 plain messages on the other isolate");
    assert.deepEqual(
      plain.map((m) => (m.payload as { n: number }).n),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    assert.ok(plain.every((m) => m.offset === undefined));
    // A history room: the store's head watch is the publication.
    for (const c of [a, b]) await joinRoom(c, "history:1");
    await publishEverywhere([a, b], "history:1", 20);
  } finally {
    await Promise.allSettled(groups.flat().map((c) => c.close()));
  }
});

interface IsolateHealth {
  instanceId: string;
  bus: { transport: string; gaps: number };
}

/** `/healthz` of one isolate: a new connection per request until one lands there. */
async function healthOf(server: ServerProcess, instanceId: string): Promise<IsolateHealth> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const client = Deno.createHttpClient({});
    try {
      const res = await fetch(`${server.httpUrl}/healthz`, { client });
      const health = await res.json() as IsolateHealth;
      if (health.instanceId === instanceId) return health;
    } finally {
      client.close();
    }
  }
  throw new Error(`no /healthz answer from isolate ${instanceId}`);
}

Deno.test("kv: BroadcastChannel dropping 30% of envelopes, STORE=kv still delivers all, once, in order", async () => {
  await using kv = await tempKv();
  await using server = await startParallel({
    STORE: "kv",
    KV_PATH: kv.path,
    BUS: "broadcast",
    DENO_ENV: "test",
    BUS_TEST_DROP_RATE: "0.3",
  });
  let groups: Client[][] = [];
  try {
    groups = await spread(server, 2);
    const clients = groups.flat();
    for (const c of clients) await joinRoom(c, "chat");
    await publishEverywhere(clients, "chat", 25);
    // The drops did happen: the store filled them.
    const gaps = await Promise.all(
      groups.map(async (g) => (await healthOf(server, instanceOf.get(g[0]!)!)).bus.gaps),
    );
    assert.ok(gaps[0]! + gaps[1]! > 0, `gaps seen on the bus: ${gaps}`);
  } finally {
    await Promise.allSettled(groups.flat().map((c) => c.close()));
  }
});

Deno.test("kv: the same drops without a shared store show as gaps in /healthz", async () => {
  await using server = await startParallel({
    STORE: "memory",
    HISTORY_SIZE: "0",
    BUS: "broadcast",
    DENO_ENV: "test",
    BUS_TEST_DROP_RATE: "0.3",
  });
  let groups: Client[][] = [];
  try {
    groups = await spread(server, 1);
    const [a, b] = [groups[0]![0]!, groups[1]![0]!];
    for (const c of [a, b]) await joinRoom(c, "plain");
    const got = collectRoom(b, "plain");
    for (let n = 1; n <= 100; n++) await publish(a, "plain", { n });
    await sleep(300);
    assert.ok(got.length < 100, `some were dropped (got ${got.length})`);
    const health = await healthOf(server, instanceOf.get(b)!);
    assert.ok(health.bus.gaps > 0, "the receiving isolate counted gaps");
    // A drop shows once a later envelope arrives; the last ones may not have.
    assert.ok(got.length + health.bus.gaps <= 100);
    assert.ok(got.length + health.bus.gaps >= 90, JSON.stringify({ got: got.length, health }));
  } finally {
    await Promise.allSettled(groups.flat().map((c) => c.close()));
  }
});

for (const bus of ["broadcast", "kv"]) {
  Deno.test(`kv: presence converges across two isolates on STORE=kv, BUS=${bus}`, async () => {
    await using kv = await tempKv();
    await using server = await startParallel({
      STORE: "kv",
      KV_PATH: kv.path,
      BUS: bus,
      PRESENCE: "1",
      HISTORY_SIZE: "0",
    });
    let groups: Client[][] = [];
    try {
      groups = await spread(server, 3);
      const clients = groups.flat();
      for (const c of clients) await joinRoom(c, "lobby");
      // Every member, on either isolate, counts all 6 users.
      await eventually(
        async () => {
          const counts = await Promise.all(clients.map(async (c) => {
            const state = await c.request({
              type: "presence",
              room: "lobby",
              id: crypto.randomUUID(),
            });
            return state.count;
          }));
          return counts.every((n) => n === 6);
        },
        10_000,
        "presence count 6 on every client",
      );
      // A leave on one isolate reaches the other.
      await groups[0]![0]!.close();
      const other = groups[1]![0]!;
      await eventually(
        async () => {
          const state = await other.request({
            type: "presence",
            room: "lobby",
            id: crypto.randomUUID(),
          });
          return state.count === 5;
        },
        10_000,
        "presence count 5 after a leave",
      );
    } finally {
      await Promise.allSettled(groups.flat().map((c) => c.close()));
    }
  });
}
