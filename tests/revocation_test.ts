/**
 * Revocation on one node and between in-process instances: `/api/revoke`
 * (authorization, bodies, list, lift), what a revocation closes and refuses
 * (sockets, handshakes, tickets, refresh, the token cache), jti revocations,
 * expiry, bounds, and the re-sync that heals missed bus messages.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MemoryBus, MemoryHub } from "../lib/bus/memory.ts";
import type { Principal } from "../lib/core/auth.ts";
import { type Revocable, Revocations } from "../lib/core/revocations.ts";
import { PerIsolateBroker } from "../lib/broker/per_isolate.ts";
import { RoomManager } from "../lib/core/rooms.ts";
import { MemoryRevocationStore } from "../lib/store/revocations/memory.ts";
import { RedisRevocationStore } from "../lib/store/revocations/redis.ts";
import type { Revocation, RevocationStore } from "../lib/store/revocations/types.ts";
import {
  type Client,
  connect,
  eventually,
  FakeClock,
  rawHandshake,
  startServer,
  type TestServer,
  token,
} from "./_helpers.ts";

const API_KEY = "revocation-test-api-key-0123456789abcdef";
const ENV = { API_KEY, ADMIN_ROLE: "admin" };
const KEY = { authorization: `Bearer ${API_KEY}` };

/** Calls `/api/revoke` and returns the status and parsed body. */
async function api(
  ts: TestServer,
  method: string,
  body?: unknown,
  headers: Record<string, string> = KEY,
  query = "",
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${ts.httpUrl}/api/revoke${query}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

/** Connects with a token in the subprotocol, as browsers do. */
async function connectWith(ts: TestServer, jwt: string): Promise<Client> {
  return (await connect(ts.wsUrl, { protocols: ["bearer", jwt] })).client;
}

/** The status of a handshake with this token. */
async function handshakeStatus(ts: TestServer, jwt: string): Promise<number> {
  return (await rawHandshake(ts.port, "/ws", { authorization: `Bearer ${jwt}` })).status;
}

/** A token issued in the second after `revokedAt`: what a user gets by logging in again. */
function issuedAfter(revokedAtMs: number): number {
  return Math.floor(revokedAtMs / 1000) + 1;
}

async function metric(ts: TestServer, line: string): Promise<number> {
  const text = await ts.server.metrics.render();
  const found = text.split("\n").find((l) => l.startsWith(`${line} `));
  return found === undefined ? NaN : Number(found.split(" ").pop());
}

Deno.test("revoking a user closes their sockets 4403 and refuses their old tokens everywhere", async () => {
  await using ts = await startServer(ENV);
  const clients: Client[] = [];
  try {
    const old1 = await token("alice");
    const old2 = await token("alice", { ttlSec: 7200 });
    const a1 = await connectWith(ts, old1);
    const a2 = await connectWith(ts, old2);
    const bob = await connectWith(ts, await token("bob"));
    clients.push(a1, a2, bob);
    // A ticket taken before the revocation, redeemed after it.
    const ticketRes = await fetch(`${ts.httpUrl}/ticket`, {
      method: "POST",
      headers: { authorization: `Bearer ${old1}` },
    });
    const { ticket } = await ticketRes.json() as { ticket: string };

    const res = await api(ts, "POST", { userId: "alice", reason: "password reset" });
    assert.equal(res.status, 202);
    assert.equal(res.body.closed, 2);
    assert.equal(typeof res.body.until, "number");
    for (const c of [a1, a2]) assert.deepEqual(await c.closed, { code: 4403, reason: "revoked" });
    assert.equal((await bob.request({ type: "ping", id: "p" })).type, "pong", "bob is untouched");

    // The old tokens were verified (and cached) before: they are refused all the same.
    assert.equal(await handshakeStatus(ts, old1), 401);
    assert.equal(await handshakeStatus(ts, old2), 401);
    const ticketAfter = await rawHandshake(ts.port, `/ws?ticket=${ticket}`);
    assert.equal(ticketAfter.status, 401, "a ticket issued before is refused after");
    const newTicket = await fetch(`${ts.httpUrl}/ticket`, {
      method: "POST",
      headers: { authorization: `Bearer ${old1}` },
    });
    assert.equal(newTicket.status, 401);
    await newTicket.body?.cancel();

    // Logging in again gives a token issued after the revocation: it works.
    const revokedAt = (await api(ts, "GET")).body.revocations as { revokedAt: number }[];
    const fresh = await token("alice", { issuedAt: issuedAfter(revokedAt[0]!.revokedAt) });
    const back = await connectWith(ts, fresh);
    clients.push(back);
    assert.equal((await back.request({ type: "ping", id: "p" })).type, "pong");

    const failures = ts.audit.of("auth_failure").filter((f) => f.reason === "revoked");
    assert.ok(failures.length >= 4, `revoked auth failures audited: ${failures.length}`);
    const [record] = ts.audit.of("revoke");
    assert.deepEqual(
      { by: record?.by, user: record?.user, closed: record?.closed, reason: record?.reason },
      { by: "server", user: "alice", closed: 2, reason: "password reset" },
    );
    const disconnects = ts.audit.of("disconnect").filter((d) => d.reason === "revoked");
    assert.equal(disconnects.length, 2);
    const everything = JSON.stringify(ts.audit.records);
    for (const secret of [old1, old2, fresh, API_KEY]) {
      assert.ok(!everything.includes(secret), "no credential in the audit log");
    }
    assert.equal(await metric(ts, "realtime_revocations_active"), 1);
    assert.equal(await metric(ts, "realtime_revoked_closes_total"), 2);
    assert.ok(await metric(ts, 'realtime_auth_failures_total{reason="revoked"}') >= 4);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

Deno.test("a refresh with a revoked token is refused; the connection keeps its own", async () => {
  await using ts = await startServer(ENV);
  const old = await token("alice", { issuedAt: Math.floor(Date.now() / 1000) - 10 });
  const res = await api(ts, "POST", { userId: "alice" });
  assert.equal(res.status, 202);
  assert.equal(res.body.closed, 0);
  const revokedAt = Date.now();
  const client = await connectWith(
    ts,
    await token("alice", { issuedAt: issuedAfter(revokedAt) }),
  );
  try {
    const reply = await client.request({ type: "refresh", token: old, id: "r" });
    assert.equal(reply.type, "error");
    assert.equal(reply.code, "unauthorized");
    assert.equal((await client.request({ type: "ping", id: "p" })).type, "pong");
    assert.equal(ts.audit.of("refresh_failed")[0]?.reason, "revoked");
  } finally {
    await client.close();
  }
});

Deno.test("revoking a jti closes and refuses that token only", async () => {
  await using ts = await startServer(ENV);
  const clients: Client[] = [];
  try {
    const stolen = await token("alice", { jti: "token-1" });
    const other = await token("alice", { jti: "token-2" });
    const plain = await token("alice");
    const s = await connectWith(ts, stolen);
    const o = await connectWith(ts, other);
    const p = await connectWith(ts, plain);
    clients.push(s, o, p);
    const res = await api(ts, "POST", { jti: "token-1" });
    assert.equal(res.status, 202);
    assert.equal(res.body.closed, 1);
    assert.deepEqual(await s.closed, { code: 4403, reason: "revoked" });
    for (const c of [o, p]) assert.equal((await c.request({ type: "ping", id: "x" })).type, "pong");
    assert.equal(await handshakeStatus(ts, stolen), 401);
    const again = await connectWith(ts, other);
    clients.push(again);
    assert.equal(ts.audit.of("revoke")[0]?.jti, "token-1");
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

Deno.test("GET lists the revocations in force and DELETE lifts them", async () => {
  await using ts = await startServer(ENV);
  const old = await token("alice");
  const until = Math.floor(Date.now() / 1000) + 600;
  assert.equal((await api(ts, "POST", { userId: "alice", untilSec: until })).status, 202);
  assert.equal((await api(ts, "POST", { jti: "t-9", reason: "leaked" })).status, 202);
  const listed = await api(ts, "GET");
  assert.equal(listed.status, 200);
  assert.equal(listed.body.total, 2);
  const [newest, oldest] = listed.body.revocations as Record<string, unknown>[];
  assert.deepEqual(
    { jti: newest?.jti, reason: newest?.reason, by: newest?.by },
    { jti: "t-9", reason: "leaked", by: "server" },
  );
  assert.deepEqual({ userId: oldest?.userId, until: oldest?.until }, {
    userId: "alice",
    until: until * 1000,
  });
  const one = await api(ts, "GET", undefined, KEY, "?limit=1");
  assert.deepEqual([(one.body.revocations as unknown[]).length, one.body.total], [1, 2]);
  assert.equal((await api(ts, "GET", undefined, KEY, "?limit=0")).status, 400);

  const lifted = await api(ts, "DELETE", { userId: "alice", reason: "mistake" });
  assert.deepEqual(lifted, { status: 200, body: { lifted: true } });
  const client = await connectWith(ts, old);
  await client.close();
  const again = await api(ts, "DELETE", { userId: "alice" });
  assert.equal(again.status, 404);
  assert.equal((await api(ts, "GET")).body.total, 1);
  const [unrevoke] = ts.audit.of("unrevoke");
  assert.deepEqual({ by: unrevoke?.by, user: unrevoke?.user, reason: unrevoke?.reason }, {
    by: "server",
    user: "alice",
    reason: "mistake",
  });
});

Deno.test("bad bodies get 400 with a message that says what is wrong", async () => {
  await using ts = await startServer(ENV);
  const now = Math.floor(Date.now() / 1000);
  const cases: [unknown, RegExp][] = [
    ["not json", /not valid JSON/],
    [{}, /exactly one of "userId" or "jti"/],
    [{ userId: "a", jti: "b" }, /exactly one of "userId" or "jti"/],
    [{ userId: "" }, /^userId: /],
    [{ userId: 42 }, /^userId: /],
    [{ jti: "x".repeat(257) }, /^jti: /],
    [{ userId: "a", reason: "r".repeat(201) }, /^reason: /],
    [{ userId: "a", untilSec: now - 10 }, /untilSec: must be in the future/],
    [{ userId: "a", untilSec: now + 400 * 86_400 }, /untilSec: must be at most 366 days/],
    [{ userId: "a", untilSec: 1.5 }, /^untilSec: /],
    [{ userId: "a", token: "eyJ..." }, /token/],
    [[], /^body: /],
  ];
  for (const [body, message] of cases) {
    const res = await api(ts, "POST", body);
    assert.equal(res.status, 400, JSON.stringify(body));
    const error = res.body.error as { code: string; message: string };
    assert.equal(error.code, "bad_request");
    assert.match(error.message, message, JSON.stringify(body));
  }
  assert.equal((await api(ts, "DELETE", { userId: "a", jti: "b" })).status, 400);
  const big = await api(ts, "POST", JSON.stringify({ userId: "a", reason: "x".repeat(5000) }));
  assert.equal(big.status, 413);
  assert.equal((await api(ts, "PUT", { userId: "a" })).status, 405);
  assert.equal((await api(ts, "GET")).body.total, 0, "nothing was revoked");
});

Deno.test("the revoke API is authorized as the publish API is", async () => {
  await using ts = await startServer(ENV);
  await using off = await startServer();
  assert.equal((await api(ts, "POST", { userId: "x" }, {})).status, 401);
  assert.equal(
    (await api(ts, "POST", { userId: "x" }, { authorization: "Bearer wrong-key" })).status,
    401,
  );
  const user = { authorization: `Bearer ${await token("mallory")}` };
  assert.equal((await api(ts, "POST", { userId: "x" }, user)).status, 403);
  assert.equal((await api(ts, "GET", undefined, user)).status, 403);
  const adminToken = await token("root", { roles: ["admin"] });
  const admin = { authorization: `Bearer ${adminToken}` };
  assert.equal((await api(ts, "POST", { userId: "x" }, admin)).status, 202);
  assert.equal(ts.audit.of("revoke")[0]?.by, "root");
  // An admin revoking themselves loses the API along with everything else.
  assert.equal((await api(ts, "POST", { userId: "root" }, admin)).status, 202);
  assert.equal((await api(ts, "GET", undefined, admin)).status, 401);
  assert.equal((await api(off, "POST", { userId: "x" })).status, 404);
});

Deno.test("two instances on one bus: a revocation made on one closes sockets on the other", async () => {
  const hub = new MemoryHub();
  // Per-process stores: nothing is shared but the bus, so only the bus can carry it.
  await using a = await startServer(ENV, { bus: new MemoryBus({ hub }) });
  await using b = await startServer(ENV, { bus: new MemoryBus({ hub }) });
  const old = await token("alice");
  const client = await connectWith(a, old);
  const res = await api(b, "POST", { userId: "alice" });
  assert.deepEqual(res.body.closed, 0, "none of alice's sockets were on B");
  assert.deepEqual(await client.closed, { code: 4403, reason: "revoked" });
  assert.equal(await handshakeStatus(a, old), 401);
  assert.equal((await api(a, "GET")).body.total, 1, "A lists what B revoked");
  assert.equal((await api(b, "DELETE", { userId: "alice" })).status, 200);
  await eventually(async () => (await api(a, "GET")).body.total === 0, 2000, "lifted on A");
  const back = await connectWith(a, old);
  await back.close();
});

Deno.test("an unreachable store answers 503 and changes nothing", async () => {
  // Nothing listens on this port: every store call fails at once.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `redis://127.0.0.1:${listener.addr.port}`;
  listener.close();
  await using ts = await startServer(ENV, {
    revocationStore: new RedisRevocationStore({ url, connectTimeoutMs: 500 }),
  });
  const client = await connectWith(ts, await token("alice"));
  for (const method of ["POST", "DELETE"]) {
    const res = await api(ts, method, { userId: "alice" });
    assert.equal(res.status, 503, method);
    assert.equal((res.body.error as { code: string }).code, "unavailable");
  }
  assert.equal((await api(ts, "GET")).body.total, 0);
  assert.equal((await client.request({ type: "ping", id: "p" })).type, "pong", "still open");
  assert.equal(ts.audit.of("revoke").length, 0);
  await client.close();
});

/** A fake session for unit tests of {@linkcode Revocations}. */
class FakeSession implements Revocable {
  closedWith: [number, string] | undefined;
  constructor(readonly principal: Principal) {}
  close(code: number, reason: string): void {
    this.closedWith = [code, reason];
  }
}

function principal(userId: string, extra: Partial<Principal> = {}): Principal {
  return { userId, expiresAt: null, rooms: [], roomsReadonly: [], roles: [], ...extra };
}

/** A memory store that says it is shared, to exercise the sync without Redis. */
class SharedMemoryStore implements RevocationStore {
  readonly kind = "memory" as const;
  readonly shared = true;
  readonly #inner: MemoryRevocationStore;
  /** When set, `list` waits for it: lets a test act while a sync is reading. */
  gate: Promise<void> | undefined;
  constructor(clock: FakeClock) {
    this.#inner = new MemoryRevocationStore({ clock });
  }
  add(r: Revocation): Promise<Revocation | undefined> {
    return this.#inner.add(r);
  }
  remove(kind: Revocation["kind"], subject: string): Promise<boolean> {
    return this.#inner.remove(kind, subject);
  }
  async list(): Promise<Revocation[]> {
    const entries = await this.#inner.list();
    await this.gate;
    return entries;
  }
  health() {
    return this.#inner.health();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

async function attach(
  revocations: Revocations,
  sessions: Revocable[] = [],
  bus = new MemoryBus(),
): Promise<() => Promise<void>> {
  await revocations.start({
    bus,
    rooms: new RoomManager({ broker: new PerIsolateBroker({ bus }) }),
    sessions,
  });
  return async () => {
    await revocations.close();
    await bus.close();
  };
}

Deno.test("revocations lapse at their `until` and are swept", async () => {
  const clock = new FakeClock();
  const revocations = new Revocations({ store: new MemoryRevocationStore({ clock }), clock });
  const stop = await attach(revocations);
  try {
    const now = clock.now();
    await revocations.revoke({ kind: "user", subject: "alice", until: now + 60_000, by: "t" });
    const old = principal("alice", { iat: Math.floor(now / 1000) - 5 });
    assert.equal(revocations.revokes(old), true);
    assert.equal(revocations.revokes(principal("alice")), true, "no iat counts as old");
    assert.equal(
      revocations.revokes(principal("alice", { iat: Math.floor(now / 1000) + 1 })),
      false,
    );
    clock.advance(60_000);
    assert.equal(revocations.revokes(old), false);
    assert.equal(revocations.size, 1, "ignored, then dropped by the housekeeping sweep");
    revocations.sweep();
    assert.equal(revocations.size, 0);
  } finally {
    await stop();
  }
});

Deno.test("the set is bounded, yet a ban is never refused: the one lapsing soonest makes room", async () => {
  const clock = new FakeClock();
  const errors: string[] = [];
  const revocations = new Revocations({
    store: new MemoryRevocationStore({ clock, maxEntries: 2 }),
    clock,
    maxEntries: 2,
    onError: (err) => errors.push(err.message),
  });
  const stop = await attach(revocations);
  try {
    const year = clock.now() + 366 * 86_400_000;
    const soon = clock.now() + 60_000;
    assert.ok(await revocations.revoke({ kind: "jti", subject: "x", until: year, by: "t" }));
    assert.ok(await revocations.revoke({ kind: "jti", subject: "y", until: soon, by: "t" }));
    const ban = await revocations.revoke({ kind: "user", subject: "c", until: year, by: "t" });
    assert.equal(ban.evicted?.subject, "y");
    assert.deepEqual(revocations.list().map((r) => r.subject).sort(), ["c", "x"]);
    assert.ok(revocations.revokes(principal("c")), "the ban is in force");
    assert.match(errors.join("\n"), /full \(2\); the jti revocation lapsing soonest was dropped/);
    assert.equal(revocations.size, 2);
  } finally {
    await stop();
  }
});

Deno.test("the periodic sync heals missed bus messages and keeps changes made while it reads", async () => {
  const clock = new FakeClock();
  const store = new SharedMemoryStore(clock);
  const revocations = new Revocations({ store, mode: "sync", clock, syncIntervalMs: 1000 });
  const alice = new FakeSession(principal("alice"));
  const hub = new MemoryHub();
  const peer = new MemoryBus({ hub });
  const stop = await attach(revocations, [alice], new MemoryBus({ hub }));
  const until = clock.now() + 60_000;
  try {
    // Written to the store by another instance whose bus message never came.
    await store.add({ kind: "user", subject: "alice", revokedAt: clock.now(), until, by: "t" });
    assert.equal(alice.closedWith, undefined, "not known here yet");
    clock.advance(1000);
    await revocations.sync(); // the one the interval started
    assert.deepEqual(alice.closedWith, [4403, "revoked"]);
    assert.deepEqual(revocations.list().map((r) => r.subject), ["alice"]);

    // Lifted elsewhere, message lost: the next sync drops it.
    await store.remove("user", "alice");
    await revocations.sync();
    assert.deepEqual(revocations.list(), []);

    // Learned from the bus while a sync reads a list that predates it: kept.
    let open!: () => void;
    store.gate = new Promise((resolve) => open = resolve);
    const reading = revocations.sync();
    const bob: Revocation = {
      kind: "user",
      subject: "bob",
      revokedAt: clock.now(),
      until,
      by: "t",
    };
    peer.publish("$system", JSON.stringify({ op: "add", revocation: bob }), { kind: "revoke" });
    assert.deepEqual(revocations.list().map((r) => r.subject), ["bob"]);
    open();
    await reading;
    assert.deepEqual(revocations.list().map((r) => r.subject), ["bob"], "the stale read lost");

    // Malformed system envelopes are ignored.
    peer.publish("$system", "{not json", { kind: "revoke" });
    peer.publish("$system", JSON.stringify({ op: "add", revocation: { kind: "x" } }), {
      kind: "revoke",
    });
    assert.equal(revocations.size, 1);
  } finally {
    store.gate = undefined;
    await stop();
    await peer.close();
  }
});
