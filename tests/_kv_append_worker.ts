/**
 * A Worker (its own isolate) that appends to a history room on a KV file and
 * posts back the offsets it got: contention between isolates on one file.
 *
 * @module
 */
import { KvHistoryStore } from "../lib/store/history/kv.ts";

interface Job {
  path: string;
  room: string;
  count: number;
  tag: string;
}

self.onmessage = async (event: MessageEvent<Job>) => {
  const { path, room, count, tag } = event.data;
  const kv = await Deno.openKv(path);
  let failures = 0;
  const store = new KvHistoryStore({ kv, onError: () => failures++ });
  const limits = { size: 10_000, ttlMs: 60_000 };
  const results = await Promise.all(
    Array.from(
      { length: count },
      (_, n) => store.append(room, JSON.stringify({ tag, n }), { limits }).then((r) => r.offset),
    ),
  );
  await store.close();
  kv.close();
  self.postMessage({ offsets: results, failures });
  self.close();
};
