/**
 * What `HISTORY_MAX_BYTES` really holds in the memory history store: tiny
 * messages, as `encodeRoomMessage` builds them, appended round-robin over
 * many rooms until the store is full and rooms come and go, then the heap
 * grown (after full GCs) against the limit. `tests/history_memory_test.ts`
 * runs it and holds the heap within 25% of the limit.
 *
 *     deno run -A --v8-flags=--expose-gc bench/history_memory.ts \
 *       [--rooms 50000] [--per-room 20] [--max-bytes 16777216]
 *
 * Prints one JSON line.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { encodeRoomMessage } from "../lib/protocols/native/protocol.ts";
import { MemoryHistoryStore } from "../lib/store/history/memory.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rooms: { type: "string" },
    "per-room": { type: "string" },
    "max-bytes": { type: "string" },
  },
});
const rooms = Number(values.rooms ?? "50000");
const perRoom = Number(values["per-room"] ?? "20");
const maxBytes = Number(values["max-bytes"] ?? String(16 * 1024 * 1024));

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");
const heap = () => {
  gc();
  gc();
  return Deno.memoryUsage().heapUsed;
};

const before = heap();
const store = new MemoryHistoryStore({ maxBytes });
const limits = { size: 100, ttlMs: 3_600_000 };
const started = performance.now();
for (let m = 0; m < perRoom; m++) {
  for (let r = 0; r < rooms; r++) {
    const room = `room-${r}`;
    // A fresh frame per message, built as the server builds one, sent to no one.
    const frame = encodeRoomMessage(room, `{"t":${m}}`, "u", 1_700_000_000_000 + m);
    await store.append(room, frame, { limits });
  }
}
const ms = performance.now() - started;
const heapBytes = heap() - before;
const stats = store.stats();
console.log(JSON.stringify({
  rooms,
  perRoom,
  maxBytes,
  streams: stats.streams,
  entries: stats.entries,
  countedBytes: stats.bytes,
  heapBytes,
  heapOverLimit: Number((heapBytes / maxBytes).toFixed(3)),
  appendsPerSec: Math.round(rooms * perRoom / (ms / 1000)),
}));
await store.close();
