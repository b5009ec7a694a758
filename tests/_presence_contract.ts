/**
 * The presence store contract: one suite every backend must pass unchanged
 * (see lib/store/presence/types.ts). A backend's test file calls
 * {@linkcode presenceStoreContract} with a way to open a fresh store, to let
 * time pass, and to count what the backend still holds.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { PresenceStore, RoomEntries } from "../lib/store/presence/types.ts";

/** One opened store under test. */
export interface ContractStore {
  store: PresenceStore;
  /** Lets `ms` pass for the store's expiry (a fake clock, or real time). */
  advance(ms: number): Promise<void>;
  /** What the backend still holds for this store (keys, map entries). */
  leftovers(): Promise<number>;
  close(): Promise<void>;
}

/** How to test one backend. */
export interface PresenceContractOptions {
  name: string;
  /** The TTL the store is opened with, in milliseconds. */
  ttlMs: number;
  open(ttlMs: number): Promise<ContractStore>;
  ignore?: boolean;
  before?(): Promise<void>;
  after?(): Promise<void>;
}

function plain(entries: RoomEntries): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [instance, users] of entries) out[instance] = Object.fromEntries(users);
  return out;
}

/**
 * Registers one Deno test per backend with one step per contract case.
 *
 * @example
 * ```ts ignore
 * presenceStoreContract({ name: "memory", ttlMs: 3000, open: openMemory });
 * ```
 */
export function presenceStoreContract(options: PresenceContractOptions): void {
  const { name, ttlMs } = options;
  const cases: [string, (c: ContractStore) => Promise<void>][] = [
    ["set, list and delete per (room, instance)", async ({ store, leftovers }) => {
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
    }],
    ["an instance not refreshed for the TTL is gone; heartbeats keep it", async (c) => {
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
    }],
    ["heartbeat answers the rooms whose entries were lost", async ({ store }) => {
      await store.set("a", "i1", "alice", { connections: 1 });
      assert.deepEqual(await store.heartbeat("i1", ["a", "b"]), ["b"]);
      await store.drop("i1", ["a"]);
    }],
    ["drop removes an instance's entries and liveness at once", async ({ store, leftovers }) => {
      await store.set("a", "i1", "alice", { connections: 1 });
      await store.set("b", "i1", "alice", { connections: 1 });
      await store.set("a", "i2", "bob", { connections: 1 });
      await store.drop("i1", ["a", "b"]);
      assert.deepEqual(await store.alive(["i1", "i2"]), new Set(["i2"]));
      assert.deepEqual(plain(await store.list("a")), { i2: { bob: { connections: 1 } } });
      assert.deepEqual(plain(await store.list("b")), {});
      await store.drop("i2", ["a"]);
      assert.equal(await leftovers(), 0);
    }],
    ["1,000 set/delete cycles leave nothing behind", async ({ store, leftovers }) => {
      for (let i = 0; i < 1000; i++) {
        const room = `r${i % 10}`;
        await store.set(room, "i1", `u${i % 7}`, { connections: 1 });
        await store.delete(room, "i1", `u${i % 7}`);
      }
      await store.drop("i1", []);
      assert.equal(await leftovers(), 0);
    }],
  ];
  Deno.test({
    name: `presence store contract: ${name}`,
    ignore: options.ignore ?? false,
    async fn(t) {
      await options.before?.();
      try {
        for (const [title, run] of cases) {
          await t.step(title, async () => {
            const opened = await options.open(ttlMs);
            try {
              await run(opened);
            } finally {
              await opened.close();
            }
          });
        }
      } finally {
        await options.after?.();
      }
    },
  });
}
