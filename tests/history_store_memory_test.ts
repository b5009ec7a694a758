/**
 * What only the memory history store does: its byte bound across rooms, and
 * that nothing stays behind once rooms expire. The shared behaviour is in
 * the contract suite (tests/history_store_contract_test.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import { entryBytes, MemoryHistoryStore, streamBytes } from "../lib/store/history/memory.ts";
import { StoreUnavailableError } from "../lib/store/types.ts";
import { FakeClock } from "./_helpers.ts";

const limits = { size: 1000, ttlMs: 60_000 };

Deno.test("memory history: all rooms together stay within maxBytes, oldest entry first out", async () => {
  const frame = "x".repeat(1000);
  const perEntry = entryBytes(frame);
  const maxBytes = streamBytes("a") + streamBytes("b") + perEntry * 10;
  const store = new MemoryHistoryStore({ maxBytes, clock: new FakeClock() });
  try {
    for (let n = 0; n < 8; n++) await store.append("a", frame, { limits });
    for (let n = 0; n < 6; n++) await store.append("b", frame, { limits });
    assert.equal(store.stats().entries, 10);
    assert.ok(store.stats().bytes <= maxBytes);
    const a = await store.read("a", { after: 0, limit: 100, limits });
    assert.deepEqual(a.entries.map((e) => e.offset), [5, 6, 7, 8], "a's oldest went first");
    assert.equal(a.oldest, 5);
    const b = await store.read("b", { after: 0, limit: 100, limits });
    assert.equal(b.entries.length, 6, "b's newer entries are untouched");
    for (let n = 0; n < 10; n++) await store.append("b", frame, { limits });
    assert.equal(store.stats().entries, 10);
    assert.equal(store.stats().streams, 1, "a, emptied, went before any more of b's entries");
    const aAgain = await store.position("a", limits);
    assert.notEqual(aAgain.epoch, a.position.epoch);
    assert.equal(aAgain.offset, 0);
  } finally {
    await store.close();
  }
});

Deno.test("memory history: a flood of rooms and bytes stays bounded", async () => {
  const maxBytes = 256 * 1024;
  const store = new MemoryHistoryStore({ maxBytes, clock: new FakeClock() });
  try {
    const frame = "y".repeat(500);
    for (let n = 0; n < 20_000; n++) {
      await store.append(`room-${n % 3000}`, frame, { limits });
      assert.ok(store.stats().bytes <= maxBytes);
    }
    // The newest message is always kept.
    const last = await store.read("room-1999", { limit: 1, limits });
    assert.equal(last.entries.length, 1);
  } finally {
    await store.close();
  }
});

Deno.test("memory history: nothing is left once rooms expire and stay idle", async () => {
  const clock = new FakeClock();
  const store = new MemoryHistoryStore({ clock, sweepIntervalMs: 1000 });
  try {
    const short = { size: 10, ttlMs: 5000 };
    for (let room = 0; room < 50; room++) {
      for (let n = 0; n < 20; n++) {
        await store.append(`r${room}`, `{"n":${n}}`, {
          limits: short,
          dedupe: { key: `u\n${n}`, windowMs: 3000 },
        });
      }
    }
    await store.position("empty", short);
    assert.deepEqual(
      { ...store.stats(), bytes: 0 },
      { streams: 51, entries: 500, bytes: 0, dedupeKeys: 1000 },
    );
    clock.advance(5000);
    assert.equal(store.stats().entries, 0, "expired by the sweep, nobody read them");
    clock.advance(6000);
    assert.deepEqual(store.stats(), { streams: 0, entries: 0, bytes: 0, dedupeKeys: 0 });
    const again = await store.append("r0", "{}", { limits: short });
    assert.equal(again.offset, 1, "an idle, dropped stream comes back as a new one");
  } finally {
    await store.close();
  }
});

Deno.test("memory history: a touched stream keeps its epoch after its entries expired", async () => {
  const clock = new FakeClock();
  const store = new MemoryHistoryStore({ clock });
  try {
    const short = { size: 10, ttlMs: 1000 };
    const first = await store.append("r", "{}", { limits: short });
    for (let n = 0; n < 5; n++) {
      clock.advance(900);
      assert.deepEqual(await store.position("r", short), { offset: 1, epoch: first.epoch });
    }
    assert.equal(store.stats().entries, 0);
    assert.deepEqual(await store.append("r", "{}", { limits: short }), {
      offset: 2,
      epoch: first.epoch,
      duplicate: false,
    });
  } finally {
    await store.close();
  }
});

Deno.test("memory history: dedupe keys are bounded, oldest forgotten first", async () => {
  const store = new MemoryHistoryStore({ clock: new FakeClock(), maxDedupeKeys: 3 });
  try {
    const send = (id: string) =>
      store.append("r", "{}", { limits, dedupe: { key: id, windowMs: 60_000 } });
    for (const id of ["a", "b", "c", "d"]) await send(id);
    assert.equal(store.stats().dedupeKeys, 3);
    assert.equal((await send("d")).duplicate, true);
    assert.equal((await send("a")).duplicate, false, "a was forgotten");
  } finally {
    await store.close();
  }
});

Deno.test("memory history: a closed store rejects and leaves no timer", async () => {
  const clock = new FakeClock();
  const store = new MemoryHistoryStore({ clock });
  assert.equal(clock.pending, 1);
  await store.close();
  assert.equal(clock.pending, 0);
  await assert.rejects(store.append("r", "{}", { limits }), StoreUnavailableError);
  await assert.rejects(store.position("r", limits), StoreUnavailableError);
  assert.equal(store.health().status, "degraded");
});

Deno.test("memory history: bad limits are refused as RangeError", async () => {
  const store = new MemoryHistoryStore({ clock: new FakeClock() });
  try {
    await assert.rejects(store.append("r", "{}", { limits: { size: 0, ttlMs: 1 } }), RangeError);
    await assert.rejects(store.read("r", { limit: -1, limits }), RangeError);
    assert.throws(() => new MemoryHistoryStore({ maxBytes: 0 }), RangeError);
  } finally {
    await store.close();
  }
});

Deno.test("memory history: HISTORY_MAX_BYTES holds in heap within 25% for tiny messages over 50,000 rooms", async () => {
  // A subprocess, for a heap of its own and --expose-gc.
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--v8-flags=--expose-gc",
      new URL("../bench/history_memory.ts", import.meta.url).pathname,
      "--rooms",
      "50000",
      "--per-room",
      "5",
      "--max-bytes",
      String(16 * 1024 * 1024),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const result = JSON.parse(text) as { heapOverLimit: number; countedBytes: number };
  assert.ok(result.countedBytes <= 16 * 1024 * 1024);
  // Before each message and room were counted at what they cost, 16 MiB held 27.6 MiB.
  assert.ok(result.heapOverLimit <= 1.25, text);
  assert.ok(result.heapOverLimit >= 0.5, `the store holds far less than it may: ${text}`);
});
