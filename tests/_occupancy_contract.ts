/**
 * The occupancy store contract (see lib/store/occupancy/types.ts): first and
 * last anywhere, decided once; reaping a dead node's keys, each answered to
 * one reaper; one view for every node exactly when the store is shared. Run
 * by tests/occupancy_store_contract_test.ts against every backend through
 * the shared harness (tests/_contract.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { OccupancyStore } from "../lib/store/occupancy/types.ts";
import { type ContractCases, type ContractSuite, runContract } from "./_contract.ts";

/** One case's backend: stores opened by one case share their holders when it is shared. */
export interface OccupancyFixture {
  /** Whether stores opened by one case see the same holders. */
  readonly shared: boolean;
  /** Opens another store on the backend (closed with the fixture). */
  open(): OccupancyStore;
  /** Closes every store opened, and the backend. */
  close(): Promise<void>;
}

/**
 * Runs the occupancy contract on one backend.
 *
 * @example
 * ```ts ignore
 * occupancyStoreContract({ name: "memory", open: openMemory });
 * ```
 */
export function occupancyStoreContract(suite: ContractSuite<OccupancyFixture>): void {
  runContract("occupancy", occupancyCases, suite);
}

/** Reaps until done. */
async function reapAll(store: OccupancyStore, node: string): Promise<string[]> {
  const emptied: string[] = [];
  for (;;) {
    const part = await store.reap(node);
    emptied.push(...part.emptied);
    if (part.done) return emptied;
  }
}

/** The occupancy contract's cases. */
export const occupancyCases: ContractCases<OccupancyFixture> = {
  "the first holder anywhere and the last are told so, once": async ({ open }) => {
    const store = open();
    assert.equal(await store.hold("room", "a"), true);
    assert.equal(await store.hold("room", "a"), false, "holding again changes nothing");
    assert.equal(await store.hold("room", "b"), false);
    assert.equal(await store.release("room", "a"), false, "b still holds it");
    assert.equal(await store.release("room", "a"), false, "a no longer holds it");
    assert.equal(await store.release("room", "b"), true, "the last anywhere");
    assert.equal(await store.release("room", "b"), false);
    assert.equal(await store.hold("room", "b"), true, "first again");
  },

  "keys are apart": async ({ open }) => {
    const store = open();
    assert.equal(await store.hold("x", "a"), true);
    assert.equal(await store.hold("y", "a"), true);
    assert.equal(await store.release("x", "a"), true);
    assert.equal(await store.release("y", "b"), false);
  },

  "nodes() lists the holders; reap releases a node's keys and names those now empty": async (
    { open },
  ) => {
    const store = open();
    await store.hold("shared", "dead");
    await store.hold("shared", "alive");
    await store.hold("only-dead", "dead");
    assert.deepEqual((await store.nodes()).sort(), ["alive", "dead"]);
    assert.deepEqual(await reapAll(store, "dead"), ["only-dead"]);
    assert.deepEqual(await store.nodes(), ["alive"]);
    assert.deepEqual(await reapAll(store, "dead"), [], "nothing left to reap");
    assert.equal(await store.release("shared", "alive"), true);
  },

  "list(prefix) names the keys held anywhere with that prefix, in order, at most limit": async (
    { open },
  ) => {
    const store = open();
    await store.hold("~a~y", "n1");
    await store.hold("~a~x", "n1");
    await store.hold("~a~y", "n2");
    await store.hold("~b~z", "n1");
    await store.hold("~a", "n1");
    assert.deepEqual(await store.list("~a~", 100), ["~a~x", "~a~y"]);
    assert.deepEqual(await store.list("~a~", 1), ["~a~x"]);
    assert.deepEqual(await store.list("~", 100), ["~a", "~a~x", "~a~y", "~b~z"]);
    assert.deepEqual(await store.list("~c", 100), []);
    await store.release("~a~x", "n1");
    assert.deepEqual(await store.list("~a~", 100), ["~a~y"]);
    await reapAll(store, "n1");
    assert.deepEqual(await store.list("~", 100), ["~a~y"], "n2 still holds it");
    await reapAll(store, "n2");
    assert.deepEqual(await store.list("~", 100), []);
  },

  "a reap of hundreds of keys finishes, each emptied key named once": async ({ open }) => {
    const store = open();
    const keys = Array.from({ length: 1200 }, (_, i) => `k${i}`);
    for (const key of keys) await store.hold(key, "dead");
    const emptied = await reapAll(store, "dead");
    assert.deepEqual(emptied.sort(), [...keys].sort());
  },

  "shared stores are one view; racing reapers share the emptied keys": async (fixture) => {
    const one = fixture.open();
    const two = fixture.open();
    assert.equal(one.shared, fixture.shared);
    assert.equal(await one.hold("room", "a"), true);
    assert.equal(await two.hold("room", "b"), !fixture.shared);
    if (!fixture.shared) return;
    assert.deepEqual(await one.list("ro", 10), ["room"], "listed from every store");
    // Both race to be last: exactly one is.
    const [x, y] = await Promise.all([one.release("room", "a"), two.release("room", "b")]);
    assert.equal(Number(x) + Number(y), 1);
    for (let i = 0; i < 30; i++) await one.hold(`r${i}`, "dead");
    const [p, q] = await Promise.all([reapAll(one, "dead"), reapAll(two, "dead")]);
    assert.equal(p.length + q.length, 30, "each emptied key to one reaper");
    assert.equal(new Set([...p, ...q]).size, 30);
  },
};
