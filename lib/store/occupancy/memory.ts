/**
 * Occupancy in this isolate's memory (`STORE=memory`): "anywhere" means this
 * isolate, so each isolate of `deno serve --parallel` decides for itself
 * (the README says so).
 *
 * @module
 */
import type { StoreHealth } from "../types.ts";
import type { OccupancyStore } from "./types.ts";

/**
 * The per-isolate {@linkcode OccupancyStore}.
 *
 * @example
 * ```ts
 * import { MemoryOccupancyStore } from "./memory.ts";
 * const store = new MemoryOccupancyStore();
 * console.assert(await store.hold("room:lobby", "node-a"));
 * console.assert(await store.release("room:lobby", "node-a"));
 * ```
 */
export class MemoryOccupancyStore implements OccupancyStore {
  readonly kind = "memory";
  readonly shared = false;
  /** Key → its holders. */
  readonly #holders = new Map<string, Set<string>>();
  /** Node → what it holds. */
  readonly #held = new Map<string, Set<string>>();

  hold(key: string, node: string): Promise<boolean> {
    const holders = this.#holders.get(key) ?? new Set();
    if (holders.has(node)) return Promise.resolve(false);
    holders.add(node);
    this.#holders.set(key, holders);
    const held = this.#held.get(node) ?? new Set();
    held.add(key);
    this.#held.set(node, held);
    return Promise.resolve(holders.size === 1);
  }

  release(key: string, node: string): Promise<boolean> {
    return Promise.resolve(this.#release(key, node));
  }

  list(prefix: string, limit: number): Promise<string[]> {
    const keys = [...this.#holders.keys()].filter((key) => key.startsWith(prefix));
    return Promise.resolve(keys.sort().slice(0, limit));
  }

  nodes(): Promise<string[]> {
    return Promise.resolve([...this.#held.keys()]);
  }

  reap(node: string): Promise<{ emptied: string[]; done: boolean }> {
    const emptied = [...this.#held.get(node) ?? []].filter((key) => this.#release(key, node));
    return Promise.resolve({ emptied, done: true });
  }

  health(): StoreHealth {
    return { status: "ok", transport: "memory" };
  }

  close(): Promise<void> {
    this.#holders.clear();
    this.#held.clear();
    return Promise.resolve();
  }

  #release(key: string, node: string): boolean {
    const holders = this.#holders.get(key);
    if (holders === undefined || !holders.delete(node)) return false;
    const held = this.#held.get(node);
    held?.delete(key);
    if (held?.size === 0) this.#held.delete(node);
    if (holders.size > 0) return false;
    this.#holders.delete(key);
    return true;
  }
}
