/**
 * The revocation store contract (see lib/store/revocations/types.ts): one
 * entry per kind and subject, expiry by the store's clock, a bound on active
 * entries, and one view from every instance exactly when the store is
 * shared. Run by tests/revocation_store_contract_test.ts against every
 * backend through the shared harness (tests/_contract.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Clock } from "../lib/clock.ts";
import type { Revocation, RevocationStore } from "../lib/store/revocations/types.ts";
import {
  type ContractCases,
  type ContractSuite,
  runContract,
  type StoreFixture,
} from "./_contract.ts";
import { FakeClock } from "./_helpers.ts";

/** What a revocation store is opened with. */
export interface RevocationStoreOptions {
  clock: Clock;
  maxEntries?: number;
}

/** One case's backend: `shared` when stores opened by one case see the same entries. */
export type RevocationFixture = StoreFixture<RevocationStore, RevocationStoreOptions>;

/**
 * Runs the revocation contract on one backend.
 *
 * @example
 * ```ts ignore
 * revocationStoreContract({ name: "memory", open: openMemory });
 * ```
 */
export function revocationStoreContract(suite: ContractSuite<RevocationFixture>): void {
  runContract("revocation", revocationCases, suite);
}

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

const byKey = (a: Revocation, b: Revocation) =>
  `${a.kind}:${a.subject}`.localeCompare(`${b.kind}:${b.subject}`);

/** The revocation contract's cases. */
export const revocationCases: ContractCases<RevocationFixture> = {
  "an added revocation is listed as it was given": async ({ open }) => {
    const clock = new FakeClock();
    const store = open({ clock });
    assert.deepEqual(await store.list(), []);
    const withReason = revocation(clock, { reason: "password reset" });
    const jti = revocation(clock, { kind: "jti", subject: "token-1", by: "admin-bob" });
    assert.equal(await store.add(withReason), undefined);
    assert.equal(await store.add(jti), undefined);
    assert.deepEqual((await store.list()).sort(byKey), [jti, withReason]);
  },

  "one entry per kind and subject: adding again replaces it": async ({ open }) => {
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
  },

  "remove lifts an active entry and says whether there was one": async ({ open }) => {
    const clock = new FakeClock();
    const store = open({ clock });
    await store.add(revocation(clock));
    await store.add(revocation(clock, { subject: "bob" }));
    assert.equal(await store.remove("user", "alice"), true);
    assert.equal(await store.remove("user", "alice"), false);
    assert.equal(await store.remove("jti", "bob"), false, "kind is part of the key");
    assert.deepEqual((await store.list()).map((r) => r.subject), ["bob"]);
  },

  "entries lapse at their `until`, by the store's clock": async ({ open }) => {
    const clock = new FakeClock();
    const store = open({ clock });
    await store.add(revocation(clock, { subject: "short", until: clock.now() + 1000 }));
    await store.add(revocation(clock, { subject: "long", until: clock.now() + HOUR }));
    clock.advance(999);
    assert.equal((await store.list()).length, 2);
    clock.advance(1);
    assert.deepEqual((await store.list()).map((r) => r.subject), ["long"]);
    assert.equal(await store.remove("user", "short"), false, "an expired entry is not active");
  },

  "a full store never refuses: the entry lapsing soonest makes room": async ({ open }) => {
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
  },

  "subjects are kept exactly, whatever characters they hold": async ({ open }) => {
    const clock = new FakeClock();
    const store = open({ clock });
    const odd = ["user:with:colons", 'quote"and\\slash', "ünïcødé 🙂", "x".repeat(256)];
    for (const subject of odd) await store.add(revocation(clock, { subject }));
    assert.deepEqual((await store.list()).map((r) => r.subject).sort(), [...odd].sort());
    for (const subject of odd) assert.equal(await store.remove("user", subject), true);
  },

  "every instance sees the same entries exactly when the store is shared": async (
    { open, shared },
  ) => {
    const clock = new FakeClock();
    const a = open({ clock });
    const b = open({ clock });
    assert.equal(a.shared, shared);
    assert.equal(b.shared, shared);
    await a.add(revocation(clock));
    assert.deepEqual((await b.list()).map((r) => r.subject), shared ? ["alice"] : []);
    assert.equal(await b.remove("user", "alice"), shared);
    assert.deepEqual((await a.list()).map((r) => r.subject), shared ? [] : ["alice"]);
    // A store opened later (a restarted node) loads what is there.
    await b.add(revocation(clock, { subject: "carol" }));
    assert.deepEqual(
      (await open({ clock }).list()).map((r) => r.subject),
      shared ? ["carol"] : [],
    );
    assert.equal(a.health().status, "ok");
    assert.equal(a.health().transport, a.kind);
  },
};
