/**
 * The ticket store contract, run unchanged against every backend: single
 * use (also under concurrent redeems), expiry by the store's clock and the
 * token's `exp`, Origin binding, the byte and count limits, and (for shared
 * backends) redeeming on another instance than the one that issued.
 *
 * To add a backend, add one entry to `BACKENDS`.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Principal } from "../lib/auth.ts";
import type { Clock } from "../lib/clock.ts";
import { KvTicketStore } from "../lib/store/tickets/kv.ts";
import { MemoryTicketStore } from "../lib/store/tickets/memory.ts";
import { RedisTicketStore } from "../lib/store/tickets/redis.ts";
import { ticketCost, type TicketLimits, type TicketStore } from "../lib/store/tickets/types.ts";
import { FakeClock } from "./_helpers.ts";
import { RedisServer, redisServerPath } from "./_redis.ts";

/** Opens a store; stores opened in one test share their data when the backend is shared. */
type Open = (options: { clock: Clock; ttlMs: number } & TicketLimits) => TicketStore;

interface Backend {
  name: string;
  shared: boolean;
  /** Runs `fn` with a fresh backend, then releases it. */
  with(fn: (open: Open) => Promise<void>): Promise<void>;
}

async function withKv(path: string | undefined, fn: (open: Open) => Promise<void>): Promise<void> {
  const dir = path === undefined ? await Deno.makeTempDir({ prefix: "kv-tickets-" }) : undefined;
  const kv = await Deno.openKv(dir === undefined ? ":memory:" : `${dir}/db.kv`);
  const stores: TicketStore[] = [];
  try {
    await fn((o) => {
      const store = new KvTicketStore({ kv, ...o });
      stores.push(store);
      return store;
    });
  } finally {
    for (const store of stores) await store.close();
    kv.close();
    if (dir !== undefined) await Deno.remove(dir, { recursive: true });
  }
}

/** A real redis-server per test; every store opened in it shares its keys. */
async function withRedis(fn: (open: Open) => Promise<void>): Promise<void> {
  if (redisServerPath === undefined) {
    if (Deno.env.get("CI")) throw new Error("CI is set but redis-server is not on PATH");
    console.warn("redis-server not on PATH: the Redis ticket store contract did not run");
    return;
  }
  const redis = await RedisServer.start(redisServerPath);
  const stores: RedisTicketStore[] = [];
  try {
    const prefix = `tickets-${crypto.randomUUID()}`;
    const first = new RedisTicketStore({ url: redis.url, ttlMs: 1, prefix });
    stores.push(first);
    await first.ready(5000);
    await fn((o) => {
      const store = new RedisTicketStore({ url: redis.url, prefix, ...o });
      stores.push(store);
      return store;
    });
  } finally {
    for (const store of stores) await store.close();
    await redis.stop();
  }
}

const BACKENDS: Backend[] = [
  {
    name: "memory",
    shared: false,
    async with(fn) {
      const stores: TicketStore[] = [];
      try {
        await fn((o) => {
          const store = new MemoryTicketStore(o);
          stores.push(store);
          return store;
        });
      } finally {
        for (const store of stores) await store.close();
      }
    },
  },
  { name: "kv (file)", shared: true, with: (fn) => withKv(undefined, fn) },
  { name: "redis", shared: true, with: withRedis },
  { name: "kv (:memory:)", shared: true, with: (fn) => withKv(":memory:", fn) },
];

function principal(clock: Clock, overrides: Partial<Principal> = {}): Principal {
  return {
    userId: "alice",
    expiresAt: Math.floor(clock.now() / 1000) + 3600,
    rooms: ["chat:*"],
    roomsReadonly: [],
    roles: [],
    ...overrides,
  };
}

const TTL = 30_000;

for (const backend of BACKENDS) {
  const test = (name: string, fn: (open: Open) => Promise<void>) =>
    Deno.test(`ticket store (${backend.name}): ${name}`, () => backend.with(fn));

  test("a ticket is redeemed once, for its principal", async (open) => {
    const clock = new FakeClock();
    const store = open({ clock, ttlMs: TTL });
    const alice = principal(clock);
    const issued = await store.issue(alice, "https://app.example");
    assert.ok(issued !== null);
    assert.match(issued.ticket, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(issued.expiresAt, clock.now() + TTL);
    assert.deepEqual(await store.redeem(issued.ticket, "https://app.example"), {
      ok: true,
      principal: alice,
    });
    assert.deepEqual(await store.redeem(issued.ticket, "https://app.example"), {
      ok: false,
      reason: "ticket_invalid",
    });
    assert.deepEqual(await store.redeem("not-a-ticket", null), {
      ok: false,
      reason: "ticket_invalid",
    });
  });

  test("expiry: the TTL by the store's clock, never past the token's exp", async (open) => {
    const clock = new FakeClock();
    const store = open({ clock, ttlMs: TTL });
    const issued = (await store.issue(principal(clock), null))!;
    clock.advance(TTL);
    assert.deepEqual(await store.redeem(issued.ticket, null), {
      ok: false,
      reason: "ticket_invalid",
    });
    const soon = principal(clock, { expiresAt: Math.floor(clock.now() / 1000) + 5 });
    const short = (await store.issue(soon, null))!;
    assert.equal(short.expiresAt, soon.expiresAt! * 1000);
    clock.advance(5000);
    assert.equal((await store.redeem(short.ticket, null)).ok, false);
  });

  test("another Origin fails and uses the ticket up", async (open) => {
    const clock = new FakeClock();
    const store = open({ clock, ttlMs: TTL });
    const issued = (await store.issue(principal(clock), "https://app.example"))!;
    assert.deepEqual(await store.redeem(issued.ticket, "https://evil.example"), {
      ok: false,
      reason: "ticket_origin_mismatch",
    });
    assert.equal((await store.redeem(issued.ticket, "https://app.example")).ok, false);
    // Unbound tickets take any Origin.
    const free = (await store.issue(principal(clock), null))!;
    assert.equal((await store.redeem(free.ticket, "https://anywhere.example")).ok, true);
  });

  test("20 concurrent redeems of one ticket: exactly one succeeds", async (open) => {
    const clock = new FakeClock();
    const stores = backend.shared
      ? Array.from({ length: 4 }, () => open({ clock, ttlMs: TTL }))
      : [open({ clock, ttlMs: TTL })];
    const issued = (await stores[0]!.issue(principal(clock), null))!;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => stores[i % stores.length]!.redeem(issued.ticket, null)),
    );
    assert.equal(results.filter((r) => r.ok).length, 1);
  });

  test("a full store answers null: bytes and count are capped, and free again later", async (open) => {
    const clock = new FakeClock();
    // The attack: every ticket carries the longest Origin /ticket lets through.
    const origin = `https://${"a".repeat(480)}.example`;
    const cost = ticketCost({ principal: principal(clock), origin, expiresAt: clock.now() + TTL });
    const maxBytes = 10 * cost + cost / 2;
    const stores = backend.shared
      ? [open({ clock, ttlMs: TTL, maxBytes }), open({ clock, ttlMs: TTL, maxBytes })]
      : [open({ clock, ttlMs: TTL, maxBytes })];
    const issued = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) => stores[i % stores.length]!.issue(principal(clock), origin),
      ),
    );
    assert.equal(
      issued.filter((t) => t !== null).length,
      10,
      "ten fit, on every instance together",
    );
    // A small ticket still fits in the half left over.
    assert.notEqual(await stores[0]!.issue(principal(clock), null), null);
    // Tickets lapse with their lifetime (two at most for a shared store's windows).
    clock.advance(2 * TTL);
    assert.notEqual(await stores[0]!.issue(principal(clock), origin), null);

    const counted = open({ clock, ttlMs: TTL, maxTickets: 3 });
    clock.advance(2 * TTL);
    const few = [];
    for (let i = 0; i < 5; i++) few.push(await counted.issue(principal(clock), null));
    assert.equal(few.filter((t) => t !== null).length, 3);
  });

  if (backend.shared) {
    test("a ticket issued on one instance is redeemed on another", async (open) => {
      const clock = new FakeClock();
      const a = open({ clock, ttlMs: TTL });
      const b = open({ clock, ttlMs: TTL });
      assert.equal(a.shared, true);
      const issued = (await a.issue(principal(clock), null))!;
      assert.equal((await b.redeem(issued.ticket, null)).ok, true);
      assert.equal((await a.redeem(issued.ticket, null)).ok, false);
      assert.equal(a.health().status, "ok");
    });
  }
}
