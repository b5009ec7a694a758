/**
 * Runs the history store contract (tests/_history_contract.ts) unchanged
 * against every backend. A new backend adds one `historyStoreContract` call.
 *
 * @module
 */
import { MemoryHistoryStore } from "../lib/store/history/memory.ts";
import type { HistoryStore } from "../lib/store/history/types.ts";
import { historyStoreContract } from "./_history_contract.ts";
import { FakeClock } from "./_helpers.ts";

historyStoreContract({
  name: "memory",
  ttlMs: 1000,
  open() {
    const clock = new FakeClock();
    const stores: HistoryStore[] = [new MemoryHistoryStore({ clock })];
    return Promise.resolve({
      get store() {
        return stores[0]!;
      },
      advance(ms: number) {
        clock.advance(ms);
        return Promise.resolve();
      },
      losePast() {
        // A restart: the old instance's streams are gone with it.
        const fresh = new MemoryHistoryStore({ clock });
        stores.unshift(fresh);
        return Promise.resolve(fresh);
      },
      async close() {
        for (const store of stores) await store.close();
      },
    });
  },
});
