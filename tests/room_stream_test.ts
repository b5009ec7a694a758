/**
 * One history room's ordered delivery (RoomStream) against a real memory
 * store, with a fake clock: early arrivals are held, gaps are filled from the
 * store before anything after them, what the store lost is counted and
 * skipped, duplicates are dropped, and a new epoch restarts the stream.
 */
import assert from "node:assert/strict";
import { RoomStream } from "../lib/core/room_stream.ts";
import { MemoryHistoryStore } from "../lib/store/history/memory.ts";
import type { HistoryLimits, HistoryStore, StreamPosition } from "../lib/store/history/types.ts";
import { StoreUnavailableError } from "../lib/store/types.ts";
import { FakeClock, sleep } from "./_helpers.ts";

const LIMITS: HistoryLimits = { size: 100, ttlMs: 600_000 };

function frame(n: number): string {
  return `{"type":"message","room":"r","payload":${n},"from":"u","ts":1}`;
}

/** Lets promise callbacks (the store's replies) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await sleep(0);
}

async function setup(size = LIMITS.size) {
  const clock = new FakeClock();
  const store = new MemoryHistoryStore({ clock });
  const limits = { ...LIMITS, size };
  const gaps: number[] = [];
  const stream = new RoomStream("r", {
    store,
    limits,
    clock,
    gapWaitMs: 50,
    onGap: (n) => gaps.push(n),
  });
  await stream.open();
  const got: Array<{ offset: number; payload: number }> = [];
  await stream.add(
    {
      send: (f) => {
        const m = JSON.parse(f);
        got.push({ offset: m.offset, payload: m.payload });
      },
    },
    undefined,
    () => {},
  );
  /** Stores message n and returns its position, as another instance's append would. */
  const append = async (n: number): Promise<StreamPosition> => {
    const { offset, epoch } = await store.append("r", frame(n), { limits });
    return { offset, epoch };
  };
  return { clock, store, stream, got, gaps, append };
}

Deno.test("room stream: an early message waits, the gap is read from the store, then both go out", async () => {
  const { clock, store, stream, got, gaps, append } = await setup();
  try {
    const p1 = await append(1);
    await append(2); // stored, but its envelope is lost on the way
    const p3 = await append(3);
    stream.accept(p1, frame(1));
    stream.accept(p3, frame(3));
    assert.deepEqual(got.map((m) => m.offset), [1], "3 waits for 2");
    assert.equal(stream.held, 1);
    clock.advance(50);
    await settle();
    assert.deepEqual(got.map((m) => m.offset), [1, 2, 3]);
    assert.deepEqual(got.map((m) => m.payload), [1, 2, 3]);
    assert.deepEqual(gaps, [], "nothing lost for good");
    stream.accept(p3, frame(3));
    stream.accept(p1, frame(1));
    assert.equal(got.length, 3, "duplicates are dropped");
  } finally {
    stream.close();
    await store.close();
  }
});

Deno.test("room stream: a late envelope that arrives within the wait needs no read", async () => {
  const { clock, store, stream, got, append } = await setup();
  const before = clock.pending; // the store's own sweep
  try {
    const p1 = await append(1);
    const p2 = await append(2);
    stream.accept(p2, frame(2));
    assert.equal(clock.pending, before + 1, "a gap timer");
    stream.accept(p1, frame(1));
    assert.deepEqual(got.map((m) => m.offset), [1, 2]);
    assert.equal(clock.pending, before, "the gap timer is gone");
  } finally {
    stream.close();
    await store.close();
  }
});

Deno.test("room stream: messages the store no longer has are counted as a gap and skipped", async () => {
  const { clock, store, stream, got, gaps, append } = await setup(2);
  try {
    for (let n = 1; n <= 4; n++) await append(n); // size 2: 1 and 2 are trimmed
    const p5 = await append(5); // and now 3 too
    stream.accept(p5, frame(5));
    clock.advance(50);
    await settle();
    assert.deepEqual(got.map((m) => m.offset), [4, 5]);
    assert.deepEqual(gaps, [3], "1..3 lost for good");
  } finally {
    stream.close();
    await store.close();
  }
});

Deno.test("room stream: a head report reads what the bus never brought", async () => {
  const { clock, store, stream, got, append } = await setup();
  try {
    await append(1);
    const head = await append(2);
    stream.headMoved(head);
    clock.advance(0);
    await settle();
    assert.deepEqual(got.map((m) => m.offset), [1, 2]);
  } finally {
    stream.close();
    await store.close();
  }
});

Deno.test("room stream: when the store loses the past, the stream restarts at 1 in the new epoch", async () => {
  const { clock, store, stream, got, append } = await setup();
  try {
    const p1 = await append(1);
    stream.accept(p1, frame(1));
    clock.advance(LIMITS.ttlMs + 60_000); // everything expires, the store forgets the stream
    const fresh = await append(7);
    assert.notEqual(fresh.epoch, p1.epoch, "the store began a new epoch");
    assert.equal(fresh.offset, 1);
    stream.accept(fresh, frame(7));
    clock.advance(0);
    await settle();
    assert.deepEqual(got.map((m) => [m.offset, m.payload]), [[1, 1], [1, 7]]);
    assert.deepEqual(stream.position, fresh);
  } finally {
    stream.close();
    await store.close();
  }
});

Deno.test("room stream: close clears its timer and held messages", async () => {
  const { clock, store, stream, append } = await setup();
  const before = clock.pending; // the store's own sweep
  await append(1);
  stream.accept(await append(2), frame(2));
  assert.equal(clock.pending, before + 1, "a gap timer");
  assert.equal(stream.held, 1);
  stream.close();
  assert.equal(stream.held, 0);
  assert.equal(clock.pending, before);
  await store.close();
});

Deno.test("room stream: a resync that finds the store down asks again on the retry", async () => {
  const clock = new FakeClock();
  const store = new MemoryHistoryStore({ clock });
  // Fault injection around the real store: its next position() fails, as a
  // Redis store still reconnecting after the bus came back does.
  let failNext = false;
  const flaky: HistoryStore = {
    kind: store.kind,
    append: (room, f, options) => store.append(room, f, options),
    read: (room, options) => store.read(room, options),
    health: () => store.health(),
    close: () => store.close(),
    position(room: string, limits: HistoryLimits) {
      if (failNext) {
        failNext = false;
        return Promise.reject(new StoreUnavailableError("reconnecting"));
      }
      return store.position(room, limits);
    },
  };
  const errors: unknown[] = [];
  const stream = new RoomStream("r", {
    store: flaky,
    limits: LIMITS,
    clock,
    onError: (e) => errors.push(e),
  });
  const got: number[] = [];
  try {
    await stream.open();
    await stream.add({ send: (f) => got.push(JSON.parse(f).offset) }, undefined, () => {});
    for (let n = 1; n <= 3; n++) await store.append("r", frame(n), { limits: LIMITS });
    failNext = true;
    stream.resync(); // the bus is back; nothing else will tell us about 1..3
    clock.advance(0);
    await settle();
    assert.equal(errors.length, 1);
    assert.deepEqual(got, []);
    clock.advance(1000); // the retry
    await settle();
    assert.deepEqual(got, [1, 2, 3]);
  } finally {
    stream.close();
    await store.close();
  }
});
