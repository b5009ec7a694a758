/**
 * What only the KV history store has to prove beyond the contract: isolates
 * contending on one file, head watches (more than ten rooms), frames larger
 * than a KV value, durability across a reopen, and `unavailable` only once
 * the database keeps failing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { eventually } from "./_helpers.ts";
import { KvHistoryStore } from "../lib/store/history/kv.ts";
import type { StreamPosition } from "../lib/store/history/types.ts";
import { StoreUnavailableError } from "../lib/store/types.ts";

const LIMITS = { size: 10_000, ttlMs: 60_000 };

async function tempKvPath(): Promise<{ path: string; remove(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "kv-history-" });
  return { path: `${dir}/db.kv`, remove: () => Deno.remove(dir, { recursive: true }) };
}

Deno.test("4 isolates × 150 appends on one file: contiguous offsets, none lost or doubled", async () => {
  const { path, remove } = await tempKvPath();
  try {
    const url = new URL("./_kv_append_worker.ts", import.meta.url);
    const runs = await Promise.all(
      ["a", "b", "c", "d"].map((tag) =>
        new Promise<{ offsets: number[]; failures: number }>((resolve, reject) => {
          const worker = new Worker(url, { type: "module" });
          worker.onmessage = (e) => {
            resolve(e.data);
            worker.terminate();
          };
          worker.onerror = (e) => {
            reject(e.error ?? new Error(e.message));
            worker.terminate();
          };
          worker.postMessage({ path, room: "hot", count: 150, tag });
        })
      ),
    );
    const all = runs.flatMap((r) => r.offsets).sort((x, y) => x - y);
    assert.deepEqual(all, Array.from({ length: 600 }, (_, i) => i + 1));
    const kv = await Deno.openKv(path);
    const store = new KvHistoryStore({ kv });
    const read = await store.read("hot", { after: 0, limit: 1000, limits: LIMITS });
    assert.equal(read.entries.length, 600);
    const tags = new Map<string, number>();
    for (const entry of read.entries) {
      const { tag, n } = JSON.parse(entry.frame);
      // Each isolate's own appends keep their order within the room's total order.
      assert.equal(n, tags.get(tag) ?? 0);
      tags.set(tag, n + 1);
    }
    await store.close();
    kv.close();
  } finally {
    await remove();
  }
});

Deno.test("head watches report appends from another store, for more than ten rooms", async () => {
  const { path, remove } = await tempKvPath();
  const kvA = await Deno.openKv(path);
  const kvB = await Deno.openKv(path);
  const watcher = new KvHistoryStore({ kv: kvA });
  const writer = new KvHistoryStore({ kv: kvB });
  try {
    const heads = new Map<string, StreamPosition>();
    watcher.onHead((room, position) => heads.set(room, position));
    const rooms = Array.from({ length: 25 }, (_, i) => `room-${i}`);
    for (const room of rooms) watcher.follow(room);
    assert.equal(watcher.followed, 25);
    for (const room of rooms) await writer.append(room, `{"r":"${room}"}`, { limits: LIMITS });
    await eventually(
      () => rooms.every((room) => heads.get(room)?.offset === 1),
      5000,
      "25 head moves",
    );
    // An unfollowed room is no longer reported.
    watcher.unfollow("room-3");
    heads.delete("room-3");
    await writer.append("room-3", "{}", { limits: LIMITS });
    await writer.append("room-4", "{}", { limits: LIMITS });
    await eventually(() => heads.get("room-4")?.offset === 2, 5000, "room-4 moving");
    assert.equal(heads.has("room-3"), false);
    assert.equal(watcher.followed, 24);
  } finally {
    await watcher.close();
    await writer.close();
    kvA.close();
    kvB.close();
    await remove();
  }
});

Deno.test("a frame larger than one KV value round-trips", async () => {
  const kv = await Deno.openKv(":memory:");
  const store = new KvHistoryStore({ kv });
  try {
    const big = JSON.stringify({ s: "é🙂x".repeat(40_000) });
    await store.append("r", big, { limits: LIMITS });
    await store.append("r", "{}", { limits: LIMITS });
    const read = await store.read("r", { after: 0, limit: 10, limits: LIMITS });
    assert.deepEqual(read.entries.map((e) => e.frame), [big, "{}"]);
  } finally {
    await store.close();
    kv.close();
  }
});

Deno.test("history survives closing and reopening the file (a restart)", async () => {
  const { path, remove } = await tempKvPath();
  try {
    let kv = await Deno.openKv(path);
    let store = new KvHistoryStore({ kv });
    const first = await store.append("r", '{"n":1}', { limits: LIMITS });
    await store.append("r", '{"n":2}', { limits: LIMITS });
    await store.close();
    kv.close();
    kv = await Deno.openKv(path);
    store = new KvHistoryStore({ kv });
    const read = await store.read("r", { after: 1, limit: 10, limits: LIMITS });
    assert.deepEqual(read.position, { offset: 2, epoch: first.epoch });
    assert.deepEqual(read.entries, [{ offset: 2, frame: '{"n":2}' }]);
    await store.close();
    kv.close();
  } finally {
    await remove();
  }
});

Deno.test("a database that keeps failing answers StoreUnavailableError, and health says so", async () => {
  const kv = await Deno.openKv(":memory:");
  const errors: unknown[] = [];
  const store = new KvHistoryStore({ kv, unavailableAfterMs: 200, onError: (e) => errors.push(e) });
  await store.append("r", "{}", { limits: LIMITS });
  kv.close();
  await assert.rejects(store.append("r", "{}", { limits: LIMITS }), StoreUnavailableError);
  assert.ok(store.retries > 1, "retried before giving up");
  assert.equal(errors.length, 1, "told once, when it gave up");
  assert.equal(store.health().status, "degraded");
  assert.equal(store.health().transport, "kv");
  await store.close();
});

Deno.test("rooms coming and going rebuild the watches without losing the ones that stay", async () => {
  const kv = await Deno.openKv(":memory:");
  const watcher = new KvHistoryStore({ kv });
  const writer = new KvHistoryStore({ kv });
  try {
    const heads = new Map<string, number>();
    watcher.onHead((room, position) => heads.set(room, position.offset));
    const stay = Array.from({ length: 15 }, (_, i) => `stay-${i}`);
    for (const room of stay) watcher.follow(room);
    // Churn: 200 rooms followed and unfollowed across turns, interleaved with appends.
    for (let i = 0; i < 200; i++) {
      watcher.follow(`churn-${i}`);
      if (i % 7 === 0) await writer.append(stay[i % 15]!, "{}", { limits: LIMITS });
      if (i % 3 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
      watcher.unfollow(`churn-${i}`);
    }
    assert.equal(watcher.followed, 15);
    for (const room of stay) await writer.append(room, "{}", { limits: LIMITS });
    const expected = new Map(stay.map((room, i) => [room, i < 15 ? 1 : 0]));
    for (let i = 0; i < 200; i += 7) expected.set(stay[i % 15]!, expected.get(stay[i % 15]!)! + 1);
    await eventually(
      () => stay.every((room) => heads.get(room) === expected.get(room)),
      5000,
      "every staying room's latest head",
    );
    assert.ok([...heads.keys()].every((room) => room.startsWith("stay-")));
  } finally {
    await watcher.close();
    await writer.close();
    kv.close();
  }
});
