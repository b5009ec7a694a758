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

/** The worker's global scope, typed for what this file uses. */
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<Job>) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
};

scope.onmessage = async (event: MessageEvent<Job>) => {
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
  scope.postMessage({ offsets: results, failures });
  scope.close();
};
