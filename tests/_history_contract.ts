/**
 * The one contract every history store backend is held to
 * ({@linkcode HistoryStore} in lib/store/history/types.ts): its case list,
 * run by tests/history_store_contract_test.ts against every backend through
 * the shared harness (tests/_contract.ts). The cases never know which
 * backend they run on.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { AppendResult, HistoryLimits, HistoryStore } from "../lib/store/history/types.ts";
import { type ContractCases, type ContractSuite, runContract } from "./_contract.ts";

/** One isolated store (its own rooms, keys or database) for one case. */
export interface HistoryFixture {
  /** The store under test. */
  readonly store: HistoryStore;
  /**
   * Lets `ms` of the store's time pass: a fake clock moves, a real one is
   * slept on. TTL cases use {@linkcode HistoryContractSuite.ttlMs}.
   */
  advance(ms: number): Promise<void>;
  /**
   * Makes the store lose every stream's past, as a restart (memory) or lost
   * keys (Redis) would, and returns the store to use from then on (the same
   * one or a new instance; the fixture closes both).
   */
  losePast(): Promise<HistoryStore>;
  /** Releases the store(s) and anything else the case opened. */
  close(): Promise<void>;
}

/** How to run the history contract on one backend. */
export interface HistoryContractSuite extends ContractSuite<HistoryFixture> {
  /**
   * TTL used by the expiry cases, in milliseconds: short on backends with a
   * real clock (every case then sleeps about 2× this).
   */
  ttlMs: number;
}

/**
 * Runs the history contract on one backend.
 *
 * @example
 * ```ts ignore
 * historyStoreContract({ name: "memory", ttlMs: 1000, open: openMemory });
 * ```
 */
export function historyStoreContract(suite: HistoryContractSuite): void {
  runContract("history", historyCases(suite.ttlMs), suite);
}

const LIMITS: HistoryLimits = { size: 1000, ttlMs: 60_000 };

/** A frame as `encodeRoomMessage` would build it, with characters that need care on the wire. */
function frame(n: number): string {
  return JSON.stringify({ type: "message", room: "r", payload: { n, s: 'é🙂\n"x"' } });
}

/** The history contract's cases, with expiry measured in `ttl` ms. */
export function historyCases(ttl: number): ContractCases<HistoryFixture> {
  return {
    "offsets start at 1 and go up by exactly 1; frames come back verbatim": async ({ store }) => {
      const results: AppendResult[] = [];
      for (let n = 1; n <= 5; n++) {
        results.push(await store.append("r", frame(n), { limits: LIMITS }));
      }
      assert.deepEqual(results.map((r) => r.offset), [1, 2, 3, 4, 5]);
      assert.ok(results.every((r) => !r.duplicate && r.epoch === results[0]?.epoch));
      assert.ok(results[0]!.epoch.length > 0 && results[0]!.epoch.length <= 64);
      const read = await store.read("r", { after: 0, limit: 100, limits: LIMITS });
      assert.deepEqual(read.entries, [1, 2, 3, 4, 5].map((n) => ({ offset: n, frame: frame(n) })));
      assert.deepEqual(read.position, { offset: 5, epoch: results[0]!.epoch });
      assert.equal(read.oldest, 1);
    },

    "rooms are separate streams": async ({ store }) => {
      const a1 = await store.append("a", frame(1), { limits: LIMITS });
      const b1 = await store.append("b", frame(2), { limits: LIMITS });
      const a2 = await store.append("a", frame(3), { limits: LIMITS });
      assert.deepEqual([a1.offset, b1.offset, a2.offset], [1, 1, 2]);
      assert.notEqual(a1.epoch, b1.epoch);
      const b = await store.read("b", { limit: 10, limits: LIMITS });
      assert.deepEqual(b.entries, [{ offset: 1, frame: frame(2) }]);
    },

    "200 concurrent appends get distinct, contiguous offsets in one epoch": async ({ store }) => {
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, n) => store.append("r", frame(n), { limits: LIMITS })),
      );
      assert.deepEqual(
        results.map((r) => r.offset).sort((x, y) => x - y),
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
      assert.equal(new Set(results.map((r) => r.epoch)).size, 1);
      const read = await store.read("r", { after: 0, limit: 1000, limits: LIMITS });
      assert.equal(read.entries.length, 200);
      // Each entry is the frame whose append got that offset.
      const byOffset = new Map(results.map((r, n) => [r.offset, frame(n)]));
      for (const entry of read.entries) assert.equal(entry.frame, byOffset.get(entry.offset));
    },

    "read after an offset returns exactly the missing ones, oldest first": async ({ store }) => {
      for (let n = 1; n <= 10; n++) await store.append("r", frame(n), { limits: LIMITS });
      const offsets = async (options: { after?: number; before?: number; limit: number }) =>
        (await store.read("r", { ...options, limits: LIMITS })).entries.map((e) => e.offset);
      assert.deepEqual(await offsets({ after: 7, limit: 100 }), [8, 9, 10]);
      assert.deepEqual(await offsets({ after: 3, limit: 2 }), [4, 5], "oldest ones first");
      assert.deepEqual(await offsets({ after: 3, before: 6, limit: 100 }), [4, 5]);
      assert.deepEqual(await offsets({ after: 10, limit: 100 }), []);
      assert.deepEqual(await offsets({ after: 50, limit: 100 }), []);
    },

    "read pages backwards: newest `limit` before `before`, oldest first": async ({ store }) => {
      for (let n = 1; n <= 10; n++) await store.append("r", frame(n), { limits: LIMITS });
      const page = (before: number | undefined, limit: number) =>
        store.read(
          "r",
          before === undefined ? { limit, limits: LIMITS } : { before, limit, limits: LIMITS },
        );
      const newest = await page(undefined, 3);
      assert.deepEqual(newest.entries.map((e) => e.offset), [8, 9, 10]);
      assert.equal(newest.oldest, 1, "older ones are still kept: more");
      assert.equal(newest.position.offset, 10);
      assert.deepEqual((await page(8, 3)).entries.map((e) => e.offset), [5, 6, 7]);
      assert.deepEqual((await page(2, 3)).entries.map((e) => e.offset), [1]);
      assert.deepEqual((await page(1, 3)).entries, []);
      assert.deepEqual((await page(undefined, 100)).entries.map((e) => e.offset).length, 10);
      assert.deepEqual((await page(4, 0)).entries, []);
    },

    "the room's size keeps only the newest; `oldest` tells what is gone": async ({ store }) => {
      const limits = { size: 5, ttlMs: 60_000 };
      for (let n = 1; n <= 8; n++) await store.append("r", frame(n), { limits });
      const all = await store.read("r", { limit: 100, limits });
      assert.deepEqual(all.entries.map((e) => e.offset), [4, 5, 6, 7, 8]);
      assert.equal(all.oldest, 4);
      assert.equal(all.position.offset, 8);
      const recovery = await store.read("r", { after: 1, limit: 100, limits });
      assert.deepEqual(recovery.entries.map((e) => e.offset), [4, 5, 6, 7, 8]);
      assert.ok(recovery.oldest > 2, "the caller sees that 2 and 3 are lost");
      const next = await store.append("r", frame(9), { limits });
      assert.equal(next.offset, 9, "trimming never reuses an offset");
    },

    "entries past the TTL are not returned; offsets are never reused": async (
      { store, advance },
    ) => {
      const limits = { size: 100, ttlMs: ttl };
      const first = await store.append("r", frame(1), { limits });
      await advance(ttl * 0.6);
      await store.append("r", frame(2), { limits });
      await advance(ttl * 0.6);
      const half = await store.read("r", { after: 0, limit: 100, limits });
      assert.deepEqual(half.entries.map((e) => e.offset), [2], "the first one expired");
      assert.equal(half.oldest, 2);
      assert.deepEqual(half.position, { offset: 2, epoch: first.epoch });
      await advance(ttl * 0.6);
      const gone = await store.read("r", { after: 0, limit: 100, limits });
      assert.deepEqual(gone.entries, []);
      assert.equal(gone.oldest, 0);
      // Once everything expired the store may keep the epoch (offsets go on) or
      // start a new stream (offsets restart): never the same epoch from 1 again.
      const next = await store.append("r", frame(3), { limits });
      if (next.epoch === first.epoch) {
        assert.equal(gone.position.epoch, first.epoch);
        assert.equal(next.offset, 3);
      } else {
        assert.equal(next.offset, 1);
      }
      assert.deepEqual(
        (await store.read("r", { limit: 100, limits })).entries.map((e) => e.offset),
        [next.offset],
      );
    },

    "a dedupe key seen in its window stores nothing and answers the first offset": async (
      { store, advance },
    ) => {
      const dedupe = { key: "alice\nr\nm1", windowMs: ttl };
      const first = await store.append("r", frame(1), { limits: LIMITS, dedupe });
      const again = await store.append("r", frame(1), { limits: LIMITS, dedupe });
      assert.deepEqual(first, { offset: 1, epoch: first.epoch, duplicate: false });
      assert.deepEqual(again, { offset: 1, epoch: first.epoch, duplicate: true });
      const other = await store.append("r", frame(2), {
        limits: LIMITS,
        dedupe: { key: "alice\nr\nm2", windowMs: ttl },
      });
      assert.deepEqual([other.offset, other.duplicate], [2, false]);
      const plain = await store.append("r", frame(3), { limits: LIMITS });
      assert.equal(plain.offset, 3);
      const read = await store.read("r", { after: 0, limit: 100, limits: LIMITS });
      assert.deepEqual(read.entries.map((e) => e.frame), [frame(1), frame(2), frame(3)]);
      await advance(ttl * 1.2);
      const later = await store.append("r", frame(1), { limits: LIMITS, dedupe });
      assert.deepEqual([later.offset, later.duplicate], [4, false], "the window has passed");
    },

    "concurrent appends with one dedupe key store it once": async ({ store }) => {
      const dedupe = { key: "bob\nr\nx", windowMs: 60_000 };
      const results = await Promise.all(
        Array.from({ length: 20 }, () => store.append("r", frame(1), { limits: LIMITS, dedupe })),
      );
      assert.equal(results.filter((r) => !r.duplicate).length, 1);
      assert.ok(results.every((r) => r.offset === 1));
      const read = await store.read("r", { after: 0, limit: 100, limits: LIMITS });
      assert.equal(read.entries.length, 1);
    },

    "position creates a stable epoch before the first message": async ({ store }) => {
      const empty = await store.position("r", LIMITS);
      assert.equal(empty.offset, 0);
      assert.ok(empty.epoch.length > 0 && empty.epoch.length <= 64);
      assert.deepEqual(await store.position("r", LIMITS), empty);
      const read = await store.read("r", { after: 0, limit: 10, limits: LIMITS });
      assert.deepEqual(read, { entries: [], position: empty, oldest: 0 });
      const first = await store.append("r", frame(1), { limits: LIMITS });
      assert.deepEqual(first, { offset: 1, epoch: empty.epoch, duplicate: false });
      assert.deepEqual(await store.position("r", LIMITS), { offset: 1, epoch: empty.epoch });
      assert.notEqual((await store.position("other", LIMITS)).epoch, empty.epoch);
    },

    "the epoch changes when the past is lost, and offsets restart at 1": async (backend) => {
      const before = await backend.store.append("r", frame(1), { limits: LIMITS });
      await backend.store.append("r", frame(2), { limits: LIMITS });
      const store = await backend.losePast();
      const after = await store.position("r", LIMITS);
      assert.notEqual(after.epoch, before.epoch);
      assert.equal(after.offset, 0);
      const next = await store.append("r", frame(3), { limits: LIMITS });
      assert.deepEqual(next, { offset: 1, epoch: after.epoch, duplicate: false });
      const read = await store.read("r", { after: 0, limit: 10, limits: LIMITS });
      assert.deepEqual(read.entries, [{ offset: 1, frame: frame(3) }]);
    },

    "health is ok and close is idempotent": async ({ store }) => {
      assert.equal(store.health().status, "ok");
      assert.equal(store.health().transport, store.kind);
      await store.close();
      await store.close();
    },
  };
}
