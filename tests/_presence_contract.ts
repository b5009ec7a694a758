/**
 * The presence store contract (see lib/store/presence/types.ts): its case
 * list, run by tests/presence_store_contract_test.ts against every backend
 * through the shared harness (tests/_contract.ts). A backend gives a way to
 * open a fresh store, to let time pass, and to count what it still holds.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { PresenceStore, RoomEntries } from "../lib/store/presence/types.ts";
import { type ContractCases, type ContractSuite, runContract } from "./_contract.ts";

/** One opened store under test. */
export interface PresenceFixture {
  store: PresenceStore;
  /** Lets `ms` pass for the store's expiry (a fake clock, or real time). */
  advance(ms: number): Promise<void>;
  /** What the backend still holds for this store (keys, map entries). */
  leftovers(): Promise<number>;
  close(): Promise<void>;
}

/** How to run the presence contract on one backend. */
export interface PresenceContractSuite extends Omit<ContractSuite<PresenceFixture>, "open"> {
  /** The TTL the store is opened with, in milliseconds. */
  ttlMs: number;
  /** A fresh store with this TTL. */
  open(ttlMs: number): Promise<PresenceFixture>;
}

/**
 * Runs the presence contract on one backend.
 *
 * @example
 * ```ts ignore
 * presenceStoreContract({ name: "memory", ttlMs: 3000, open: openMemory });
 * ```
 */
export function presenceStoreContract(suite: PresenceContractSuite): void {
  runContract("presence", presenceCases(suite.ttlMs), {
    ...suite,
    open: () => suite.open(suite.ttlMs),
  });
}

function plain(entries: RoomEntries): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [instance, users] of entries) out[instance] = Object.fromEntries(users);
  return out;
}

/** The presence contract's cases, for stores opened with `ttlMs`. */
export function presenceCases(ttlMs: number): ContractCases<PresenceFixture> {
  return {
    "set, list and delete per (room, instance)": async ({ store, leftovers }) => {
      assert.equal(store.ttlMs, ttlMs);
      await store.set("lobby", "i1", "alice", { connections: 2, info: { name: "Alice" } });
      await store.set("lobby", "i1", "bob", { connections: 1 });
      await store.set("lobby", "i2", "alice", { connections: 1 });
      await store.set("other", "i2", "carol", { connections: 1 });
      assert.deepEqual(plain(await store.list("lobby")), {
        i1: { alice: { connections: 2, info: { name: "Alice" } }, bob: { connections: 1 } },
        i2: { alice: { connections: 1 } },
      });
      await store.set("lobby", "i1", "alice", { connections: 1 });
      await store.delete("lobby", "i1", "bob");
      await store.delete("lobby", "i1", "nobody");
      assert.deepEqual(plain(await store.list("lobby")), {
        i1: { alice: { connections: 1 } },
        i2: { alice: { connections: 1 } },
      });
      assert.deepEqual(plain(await store.list("empty")), {});
      await store.delete("lobby", "i1", "alice");
      await store.delete("lobby", "i2", "alice");
      await store.delete("other", "i2", "carol");
      assert.deepEqual(plain(await store.list("lobby")), {});
      await store.drop("i1", []);
      await store.drop("i2", []);
      assert.equal(await leftovers(), 0, "nothing is left once every entry is gone");
    },
    "an instance not refreshed for the TTL is gone; heartbeats keep it": async (c) => {
      const { store } = c;
      await store.set("lobby", "live", "alice", { connections: 1 });
      await store.set("lobby", "dead", "bob", { connections: 1 });
      assert.deepEqual(await store.alive(["live", "dead", "never"]), new Set(["live", "dead"]));
      for (let i = 0; i < 4; i++) {
        await c.advance(ttlMs / 3);
        assert.deepEqual(await store.heartbeat("live", ["lobby"]), []);
      }
      assert.deepEqual(await store.alive(["live", "dead"]), new Set(["live"]));
      assert.deepEqual(plain(await store.list("lobby")), { live: { alice: { connections: 1 } } });
      await c.advance(ttlMs + ttlMs / 2);
      assert.deepEqual(await store.alive(["live"]), new Set());
      assert.deepEqual(plain(await store.list("lobby")), {});
      assert.equal(await c.leftovers(), 0, "expired entries leave nothing behind");
    },
    "heartbeat answers the rooms whose entries were lost": async ({ store }) => {
      await store.set("a", "i1", "alice", { connections: 1 });
      assert.deepEqual(await store.heartbeat("i1", ["a", "b"]), ["b"]);
      await store.drop("i1", ["a"]);
    },
    "drop removes an instance's entries and liveness at once": async ({ store, leftovers }) => {
      await store.set("a", "i1", "alice", { connections: 1 });
      await store.set("b", "i1", "alice", { connections: 1 });
      await store.set("a", "i2", "bob", { connections: 1 });
      await store.drop("i1", ["a", "b"]);
      assert.deepEqual(await store.alive(["i1", "i2"]), new Set(["i2"]));
      assert.deepEqual(plain(await store.list("a")), { i2: { bob: { connections: 1 } } });
      assert.deepEqual(plain(await store.list("b")), {});
      await store.drop("i2", ["a"]);
      assert.equal(await leftovers(), 0);
    },
    "1,000 set/delete cycles leave nothing behind": async ({ store, leftovers }) => {
      for (let i = 0; i < 1000; i++) {
        const room = `r${i % 10}`;
        await store.set(room, "i1", `u${i % 7}`, { connections: 1 });
        await store.delete(room, "i1", `u${i % 7}`);
      }
      await store.drop("i1", []);
      assert.equal(await leftovers(), 0);
    },
  };
}
