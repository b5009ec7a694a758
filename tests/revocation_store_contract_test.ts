/**
 * The revocation store contract, run unchanged against every backend: one
 * entry per kind and subject, expiry by the store's clock, a bound on active
 * entries, and (for shared backends) one view from every instance.
 *
 * To add a backend, add one entry to `BACKENDS`.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Clock } from "../lib/clock.ts";
import { KvRevocationStore } from "../lib/store/revocations/kv.ts";
import { MemoryRevocationStore } from "../lib/store/revocations/memory.ts";
import { RedisRevocationStore } from "../lib/store/revocations/redis.ts";
import type { Revocation, RevocationStore } from "../lib/store/revocations/types.ts";
import { FakeClock } from "./_helpers.ts";
import { redisTest } from "./_redis.ts";

/** Opens a store on the backend under test; stores opened by one test share its data when the backend is shared. */
type Open = (options: { clock: Clock; maxEntries?: number }) => RevocationStore;

interface Backend {
  name: string;
  /** Declares one test that gets a fresh backend. */
  test(name: string, fn: (open: Open) => Promise<void>): void;
}

const BACKENDS: Backend[] = [
  {
    name: "memory",
    test(name, fn) {
      Deno.test(`revocation store (memory): ${name}`, () =>
        fn((o) => new MemoryRevocationStore(o)));
    },
  },
  {
    name: "redis",
    test(name, fn) {
      redisTest(`revocation store (redis): ${name}`, (redis) => {
        const prefix = `contract-${crypto.randomUUID()}`;
        return fn((o) => new RedisRevocationStore({ url: redis.url, prefix, ...o }));
      });
    },
  },
  {
    name: "kv",
    test(name, fn) {
      // A fresh database per test, in a temp dir: stores opened by one test share it.
      Deno.test(`revocation store (kv): ${name}`, async () => {
        const dir = await Deno.makeTempDir({ prefix: "kv-revocations-" });
        const kv = await Deno.openKv(`${dir}/db.kv`);
        try {
          await fn((o) => new KvRevocationStore({ kv, ...o }));
        } finally {
          kv.close();
          await Deno.remove(dir, { recursive: true });
        }
      });
    },
  },
];

const HOUR = 3_600_000;

function revocation(clock: Clock, overrides: Partial<Revocation> = {}): Revocation {
  const now = clock.now();
  return {
    kind: "user",
    subject: "alice",
    revokedAt: now,
    until: now + HOUR,
    by: "server",
    ...overrides,
  };
}

/** Opens stores and closes them all at the end, whatever happens. */
async function using(open: Open, fn: (open: Open) => Promise<void>): Promise<void> {
  const stores: RevocationStore[] = [];
  try {
    await fn((o) => {
      const store = open(o);
      stores.push(store);
      return store;
    });
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
}

const byKey = (a: Revocation, b: Revocation) =>
  `${a.kind}:${a.subject}`.localeCompare(`${b.kind}:${b.subject}`);

for (const backend of BACKENDS) {
  backend.test("an added revocation is listed as it was given", (open) =>
    using(open, async (open) => {
      const clock = new FakeClock();
      const store = open({ clock });
      assert.deepEqual(await store.list(), []);
      const withReason = revocation(clock, { reason: "password reset" });
      const jti = revocation(clock, { kind: "jti", subject: "token-1", by: "admin-bob" });
      assert.equal(await store.add(withReason), undefined);
      assert.equal(await store.add(jti), undefined);
      assert.deepEqual((await store.list()).sort(byKey), [jti, withReason]);
    }));

  backend.test("one entry per kind and subject: adding again replaces it", (open) =>
    using(open, async (open) => {
      const clock = new FakeClock();
      const store = open({ clock });
      await store.add(revocation(clock, { reason: "first" }));
      clock.advance(1000);
      const second = revocation(clock, { reason: "second", until: clock.now() + 2 * HOUR });
      await store.add(second);
      // The same subject under the other kind is another entry.
      const jti = revocation(clock, { kind: "jti" });
      await store.add(jti);
      assert.deepEqual((await store.list()).sort(byKey), [jti, second]);
    }));

  backend.test("remove lifts an active entry and says whether there was one", (open) =>
    using(open, async (open) => {
      const clock = new FakeClock();
      const store = open({ clock });
      await store.add(revocation(clock));
      await store.add(revocation(clock, { subject: "bob" }));
      assert.equal(await store.remove("user", "alice"), true);
      assert.equal(await store.remove("user", "alice"), false);
      assert.equal(await store.remove("jti", "bob"), false, "kind is part of the key");
      assert.deepEqual((await store.list()).map((r) => r.subject), ["bob"]);
    }));

  backend.test("entries lapse at their `until`, by the store's clock", (open) =>
    using(open, async (open) => {
      const clock = new FakeClock();
      const store = open({ clock });
      await store.add(revocation(clock, { subject: "short", until: clock.now() + 1000 }));
      await store.add(revocation(clock, { subject: "long", until: clock.now() + HOUR }));
      clock.advance(999);
      assert.equal((await store.list()).length, 2);
      clock.advance(1);
      assert.deepEqual((await store.list()).map((r) => r.subject), ["long"]);
      assert.equal(await store.remove("user", "short"), false, "an expired entry is not active");
    }));

  backend.test("a full store never refuses: the entry lapsing soonest makes room", (open) =>
    using(open, async (open) => {
      const clock = new FakeClock();
      const store = open({ clock, maxEntries: 3 });
      const soon = revocation(clock, { subject: "soon", until: clock.now() + 1000 });
      assert.equal(await store.add(revocation(clock, { subject: "a" })), undefined);
      assert.equal(await store.add(soon), undefined);
      assert.equal(await store.add(revocation(clock, { kind: "jti", subject: "t" })), undefined);
      // Replacing in place takes no room.
      assert.equal(
        await store.add(revocation(clock, { subject: "a", reason: "again" })),
        undefined,
      );
      // The attack: the list is full of year-long entries, then a real ban comes.
      const ban = revocation(clock, { subject: "mallory", until: clock.now() + 60_000 });
      assert.deepEqual(await store.add(ban), soon, "the one lapsing soonest is dropped");
      assert.deepEqual((await store.list()).map((r) => r.subject).sort(), ["a", "mallory", "t"]);
      // Even a ban that lapses sooner than all the others gets in.
      const brief = revocation(clock, { kind: "jti", subject: "brief", until: clock.now() + 10 });
      assert.equal((await store.add(brief))?.subject, "mallory");
      assert.ok((await store.list()).some((r) => r.subject === "brief"));
      clock.advance(10);
      assert.equal(await store.add(revocation(clock, { subject: "c" })), undefined, "lapsed frees");
      assert.deepEqual((await store.list()).map((r) => r.subject).sort(), ["a", "c", "t"]);
    }));

  backend.test("subjects are kept exactly, whatever characters they hold", (open) =>
    using(open, async (open) => {
      const clock = new FakeClock();
      const store = open({ clock });
      const odd = ["user:with:colons", 'quote"and\\slash', "ünïcødé 🙂", "x".repeat(256)];
      for (const subject of odd) await store.add(revocation(clock, { subject }));
      assert.deepEqual((await store.list()).map((r) => r.subject).sort(), [...odd].sort());
      for (const subject of odd) assert.equal(await store.remove("user", subject), true);
    }));
}

for (const backend of BACKENDS.filter((b) => b.name !== "memory")) {
  backend.test("a shared store shows every instance the same entries", (open) =>
    using(open, async (open) => {
      const clock = new FakeClock();
      const a = open({ clock });
      const b = open({ clock });
      assert.equal(a.shared && b.shared, true);
      await a.add(revocation(clock));
      assert.deepEqual((await b.list()).map((r) => r.subject), ["alice"]);
      assert.equal(await b.remove("user", "alice"), true);
      assert.deepEqual(await a.list(), []);
      // A store opened later (a restarted node) loads what is there.
      await b.add(revocation(clock, { subject: "carol" }));
      assert.deepEqual((await open({ clock }).list()).map((r) => r.subject), ["carol"]);
    }));
}

redisTest(
  "revocation store (redis): unreachable Redis rejects with StoreUnavailableError and recovers",
  async (redis) => {
    const clock = new FakeClock();
    const store = new RedisRevocationStore({
      url: redis.url,
      prefix: "faults",
      clock,
      commandTimeoutMs: 1000,
    });
    try {
      await store.add(revocation(clock));
      await redis.stop();
      await assert.rejects(store.list(), { name: "StoreUnavailableError" });
      assert.equal(store.health().status, "degraded");
      await redis.restart();
      // Persistence is off in tests: the restarted Redis is empty, and reachable again.
      assert.deepEqual(await store.list(), []);
      assert.equal(store.health().status, "ok");
    } finally {
      await store.close();
    }
  },
);
