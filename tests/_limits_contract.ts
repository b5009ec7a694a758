/**
 * The limits store contract (see lib/store/limits/types.ts): token buckets
 * that give their capacity and then their refill; connection counts that add
 * up over nodes to a limit never exceeded, even by concurrent acquires, that
 * never go below zero, and that lapse without a refresh. Run by
 * tests/limits_store_contract_test.ts against every backend, with a fake
 * clock (each store takes it as `now`).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Clock } from "../lib/clock.ts";
import type { LimitsStore } from "../lib/store/limits/types.ts";
import {
  type ContractCases,
  type ContractSuite,
  runContract,
  type StoreFixture,
} from "./_contract.ts";
import { FakeClock } from "./_helpers.ts";

/** What a case opens a store with. */
export interface LimitsStoreOptions {
  clock: Clock;
  ttlMs: number;
}

/** One case's backend. */
export type LimitsFixture = StoreFixture<LimitsStore, LimitsStoreOptions>;

/** Runs the limits contract on one backend. */
export function limitsStoreContract(suite: ContractSuite<LimitsFixture>): void {
  runContract("limits", limitsCases, suite);
}

const RULE = { capacity: 50, refillPerSec: 10 };

/** A store on a fake clock (and the clock). */
function opened(fixture: LimitsFixture, ttlMs = 30_000): { store: LimitsStore; clock: FakeClock } {
  const clock = new FakeClock(1_700_000_000_000);
  return { store: fixture.open({ clock, ttlMs }), clock };
}

/** The limits contract's cases. */
export const limitsCases: ContractCases<LimitsFixture> = {
  "a bucket gives its capacity, then its refill, and says when the next token comes": async (f) => {
    const { store, clock } = opened(f);
    assert.deepEqual(await store.take("m:ann", 30, RULE), { granted: 30, waitMs: 0 });
    assert.deepEqual(await store.take("m:ann", 30, RULE), { granted: 20, waitMs: 100 });
    assert.deepEqual(await store.take("m:ann", 1, RULE), { granted: 0, waitMs: 100 });
    clock.advance(250); // 2.5 tokens
    const lease = await store.take("m:ann", 5, RULE);
    assert.equal(lease.granted, 2);
    assert.ok(lease.waitMs > 0 && lease.waitMs <= 50, `half a token away: ${lease.waitMs}`);
    clock.advance(60_000);
    assert.equal((await store.take("m:ann", 60, RULE)).granted, 50, "never over capacity");
  },

  "buckets are apart": async (f) => {
    const { store } = opened(f);
    assert.equal((await store.take("m:ann", 50, RULE)).granted, 50);
    assert.equal((await store.take("m:bob", 50, RULE)).granted, 50);
    assert.equal((await store.take("h:ann", 50, RULE)).granted, 50);
  },

  "connections of every node add up to the limit": async (f) => {
    const { store } = opened(f);
    assert.equal(await store.acquire("u:ann", "a", 3), true);
    assert.equal(await store.acquire("u:ann", "a", 3), true);
    assert.equal(await store.acquire("u:ann", "b", 3), true);
    assert.equal(await store.acquire("u:ann", "b", 3), false, "3 counted");
    assert.equal(await store.acquire("u:bob", "b", 3), true, "keys are apart");
    assert.equal(await store.count("u:ann"), 3);
    await store.release("u:ann", "a");
    assert.equal(await store.count("u:ann"), 2);
    assert.equal(await store.acquire("u:ann", "b", 3), true);
  },

  "a release never counts below zero": async (f) => {
    const { store } = opened(f);
    await store.release("u:ann", "a");
    await store.acquire("u:ann", "b", 5);
    await store.release("u:ann", "a");
    assert.equal(await store.count("u:ann"), 1, "a held nothing: b's count stays");
    await store.release("u:ann", "b");
    await store.release("u:ann", "b");
    assert.equal(await store.count("u:ann"), 0);
  },

  "a node's counts lapse without a refresh, and a refresh keeps them": async (f) => {
    const { store, clock } = opened(f, 1000);
    await store.acquire("u:ann", "a", 2);
    await store.acquire("u:ann", "a", 2);
    clock.advance(700);
    await store.refresh("a", new Map([["u:ann", 2]]));
    clock.advance(700);
    assert.equal(await store.count("u:ann"), 2, "refreshed 700 ms ago");
    assert.equal(await store.acquire("u:ann", "b", 2), false);
    clock.advance(400);
    assert.equal(await store.count("u:ann"), 0, "a crashed: its counts lapsed");
    assert.equal(await store.acquire("u:ann", "b", 2), true);
  },

  "a refresh writes absolute counts; zero deletes": async (f) => {
    const { store } = opened(f);
    await store.acquire("u:ann", "a", 10);
    await store.refresh("a", new Map([["u:ann", 4], ["u:bob", 2]]));
    assert.equal(await store.count("u:ann"), 4);
    assert.equal(await store.count("u:bob"), 2);
    await store.refresh("a", new Map([["u:ann", 0]]));
    assert.equal(await store.count("u:ann"), 0);
    assert.equal(await store.count("u:bob"), 2);
  },

  "stores on one shared backend see one bucket and one count": async (f) => {
    if (!f.shared) return;
    const one = opened(f).store;
    const two = opened(f).store;
    assert.equal((await one.take("m:ann", 40, RULE)).granted, 40);
    assert.equal((await two.take("m:ann", 40, RULE)).granted, 10, "one bucket for both");
    assert.equal(await one.acquire("u:ann", "a", 1), true);
    assert.equal(await two.acquire("u:ann", "b", 1), false, "one count for both");
  },

  "concurrent acquires never pass the limit": async (f) => {
    const stores = f.shared ? [opened(f).store, opened(f).store] : [opened(f).store];
    const answers = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) => stores[i % stores.length]!.acquire("u:ann", `n${i % 4}`, 5),
      ),
    );
    assert.equal(answers.filter((ok) => ok).length, 5);
    assert.equal(await stores[0]!.count("u:ann"), 5);
  },

  "concurrent takes never hand out more than the bucket": async (f) => {
    const stores = f.shared ? [opened(f).store, opened(f).store] : [opened(f).store];
    const leases = await Promise.all(
      Array.from({ length: 20 }, (_, i) => stores[i % stores.length]!.take("m:ann", 5, RULE)),
    );
    assert.equal(leases.reduce((sum, l) => sum + l.granted, 0), 50);
  },
};
