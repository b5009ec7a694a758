/**
 * The server run the way today's Deno Deploy runs it: `main.ts` with the
 * platform's `DENO_DEPLOYMENT_ID`, `PORT` honoured, a JWT key (dev mode is
 * refused there), no `--allow-write`, no `--unstable-kv` on the command line
 * (deno.json's `"unstable": ["kv"]` turns KV on), no `KV_PATH` (so
 * `Deno.openKv()` is called with no path) and no `BUS`/`STORE` (Deploy's
 * defaults: `kv` and `kv`).
 *
 * Deploy's managed KV cannot be reached from here. Locally `Deno.openKv()`
 * with no path opens a SQLite file under Deno's origin storage
 * (`<DENO_DIR>/location_data/<sha256 of the origin>/kv.sqlite3`) without any
 * permission flag; each test gives its processes one `--location` of its own,
 * so "the app's database" is a fresh file that two instances share (as two
 * Deploy instances share the managed one) and nothing leaks between runs. The
 * file is removed afterwards.
 *
 * An eviction is SIGINT (Deploy sends SIGKILL 5 s later): every client gets
 * 1012 within a second, the process exits within five, and a client of a
 * history room reconnects to another instance and recovers with `since`.
 */
import assert from "node:assert/strict";
import { type Client, connect, joinRoom, type Msg, SECRET, sleep, token } from "./_helpers.ts";
import { freePort, type ServerProcess, spawnServer } from "./_process.ts";
import { deployWarnings, loadConfig } from "../lib/config.ts";
import { shutdownPlan } from "../lib/shutdown.ts";

/** The origin-storage directory of `origin`, where `Deno.openKv()` keeps its file. */
async function originStorage(origin: string): Promise<string> {
  const info = new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" });
  const { originStorage: root } = JSON.parse(
    new TextDecoder().decode((await info.output()).stdout),
  ) as { originStorage: string };
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(origin));
  const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${root}/${hex}`;
}

/** A Deploy-like app: one `--location` (one KV database) for every instance it starts. */
async function deployApp(): Promise<
  { start(): Promise<ServerProcess>; storage: string } & AsyncDisposable
> {
  const origin = `https://deploy-test-${crypto.randomUUID()}.invalid`;
  const storage = await originStorage(origin);
  return {
    storage,
    start() {
      const port = freePort();
      return spawnServer(
        ["run", `--location=${origin}`, "--allow-net", "--allow-env", "--allow-read", "main.ts"],
        {
          port,
          env: {
            DENO_DEPLOYMENT_ID: `test-${crypto.randomUUID()}`,
            PORT: String(port),
            JWT_SECRET: SECRET,
            HISTORY_SIZE: "100",
            LOG_LEVEL: "warning",
          },
        },
      );
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(storage, { recursive: true }).catch(() => {});
    },
  };
}

async function client(instance: ServerProcess, sub: string): Promise<Client> {
  return (await connect(`${instance.wsUrl}?token=${await token(sub, { rooms: ["*"] })}`)).client;
}

Deno.test("deploy: detected from DENO_DEPLOYMENT_ID; BUS and STORE default to kv; signals close fast", () => {
  const deploy = { JWT_SECRET: SECRET, DENO_DEPLOYMENT_ID: "d1" };
  const kinds = (env: Record<string, string>) => {
    const c = loadConfig(env);
    return [c.bus.kind, c.store.kind, c.history.store, c.store.kv.path];
  };
  assert.deepEqual(kinds(deploy), ["kv", "kv", "kv", undefined]);
  assert.deepEqual(kinds({ ...deploy, BUS: "broadcast" }), ["broadcast", "kv", "kv", undefined]);
  assert.deepEqual(kinds({ ...deploy, BUS: "redis", REDIS_URL: "redis://r:6379" }).slice(0, 3), [
    "redis",
    "redis",
    "redis",
  ]);
  // Elsewhere nothing changes.
  assert.deepEqual(kinds({ JWT_SECRET: SECRET }).slice(0, 3), ["broadcast", "memory", "memory"]);
  assert.equal(deployWarnings(loadConfig(deploy)).length, 0);
  assert.match(deployWarnings(loadConfig({ ...deploy, BUS: "broadcast" }))[0]!, /may not cross/);
  assert.equal(deployWarnings(loadConfig({ JWT_SECRET: SECRET, BUS: "broadcast" })).length, 0);

  const onDeploy = shutdownPlan(loadConfig(deploy).server);
  assert.equal(onDeploy.restart, true);
  assert.ok(onDeploy.graceMs + onDeploy.httpDrainMs <= 1000 && onDeploy.deadlineMs! < 5000);
  const elsewhere = shutdownPlan(loadConfig({ JWT_SECRET: SECRET }).server);
  assert.deepEqual([elsewhere.restart, elsewhere.graceMs, elsewhere.deadlineMs], [
    false,
    10_000,
    undefined,
  ]);
});

Deno.test("deploy: starts without unstable flags or write permission, with BUS=kv and STORE=kv", async () => {
  await using app = await deployApp();
  await using a = await app.start();
  const health = await (await fetch(`${a.httpUrl}/healthz`)).json() as {
    status: string;
    bus: { transport?: string };
    store: { transport: string };
  };
  assert.equal(health.status, "ok");
  assert.equal(health.store.transport, "kv");
  // No BroadcastChannel warning: BUS was left to its Deploy default.
  assert.doesNotMatch(a.output(), /BroadcastChannel may not cross/);
  // The database is the one Deno.openKv() opens with no path: under origin storage.
  assert.ok((await Deno.stat(`${app.storage}/kv.sqlite3`)).isFile, app.storage);
});

Deno.test("deploy: BUS=broadcast is honoured, with a warning that it may not cross instances", async () => {
  const port = freePort();
  const origin = `https://deploy-test-${crypto.randomUUID()}.invalid`;
  const storage = await originStorage(origin);
  try {
    await using a = await spawnServer(
      ["run", `--location=${origin}`, "--allow-net", "--allow-env", "--allow-read", "main.ts"],
      {
        port,
        env: { DENO_DEPLOYMENT_ID: "d", PORT: String(port), JWT_SECRET: SECRET, BUS: "broadcast" },
      },
    );
    assert.match(a.output(), /warning: BUS=broadcast on Deno Deploy: BroadcastChannel may not/);
  } finally {
    await Deno.remove(storage, { recursive: true }).catch(() => {});
  }
});

Deno.test("deploy: chat, history, and an eviction (SIGINT) closes every socket with 1012 at once; history recovers on another instance", async () => {
  await using app = await deployApp();
  await using a = await app.start();
  await using b = await app.start();

  // Chat: two clients on instance A.
  const alice = await client(a, "alice");
  const bob = await client(a, "bob");
  const joined = await joinRoom(alice, "chat");
  await joinRoom(bob, "chat");
  const ack = await alice.request({ type: "message", room: "chat", payload: "hi", id: "m1" });
  assert.equal(ack.type, "ack");
  const got = await bob.nextOf("message");
  assert.deepEqual([got.payload, got.from, got.offset], ["hi", "alice", 1]);
  const seen = await alice.nextOf("message");

  // Eviction: SIGINT to A. Every socket gets 1012 within a second.
  const closes = [alice, bob].map((c) => c.closed.then((e) => ({ ...e, at: performance.now() })));
  const sentAt = performance.now();
  Deno.kill(a.pid, "SIGINT");
  const closed = await Promise.all(closes);
  for (const c of closed) {
    assert.deepEqual([c.code, c.reason], [1012, "service restart"]);
    assert.ok(c.at - sentAt < 1000, `closed ${Math.round(c.at - sentAt)} ms after SIGINT`);
  }
  const status = await Promise.race([a.exited, sleep(5000).then(() => undefined)]);
  assert.ok(status !== undefined, `A exited within 5 s of SIGINT; output:\n${a.output()}`);
  assert.equal(status.code, 0);
  const exitMs = Math.round(performance.now() - sentAt);

  // Meanwhile carol, on instance B, goes on talking in the room.
  const carol = await client(b, "carol");
  await joinRoom(carol, "chat");
  for (let i = 0; i < 3; i++) {
    const reply = await carol.request({ type: "message", room: "chat", payload: i, id: `c${i}` });
    assert.equal(reply.type, "ack");
  }

  // Alice reconnects (to B: A is gone) and picks up exactly what she missed.
  const back = await client(b, "alice");
  const rejoined = await joinRoom(back, "chat", { offset: seen.offset, epoch: joined.epoch });
  assert.deepEqual([rejoined.recovered, rejoined.missed, rejoined.offset], [true, 3, 4]);
  const missed: Msg[] = [];
  for (let i = 0; i < 3; i++) missed.push(await back.nextOf("message"));
  assert.deepEqual(missed.map((m) => [m.payload, m.offset]), [[0, 2], [1, 3], [2, 4]]);
  console.log(
    `eviction: sockets closed in ${
      closed.map((c) => Math.round(c.at - sentAt)).join(", ")
    } ms, process exited in ${exitMs} ms`,
  );
  await back.close();
  await carol.close();
});
