/**
 * Occupancy on Deno KV (`STORE=kv`), shared by every isolate on the
 * database: under `[…, "occupancy"]`, `["c", key]` counts a key's holders (a
 * `Deno.KvU64`), `["k", key, node]` and `["n", node, key]` say who holds
 * what, and `["nodes", node]` lists the nodes. Every change checks the count
 * and the holder entry it read, so "first" and "last" are decided once, and
 * a reap releases each key with the same check (a key two reapers race for
 * is answered to the one whose commit wins).
 *
 * @module
 */
import { CONFLICT, KvHandle, type KvHandleOptions } from "../_kv.ts";
import type { StoreHealth } from "../types.ts";
import type { OccupancyStore } from "./types.ts";

/** Options for {@linkcode KvOccupancyStore}. */
export interface KvOccupancyStoreOptions extends KvHandleOptions {
  /** @default {["realtime"]} */
  prefix?: Deno.KvKey;
  /** Told of each operation that gave up (the database is unavailable). */
  onError?: (error: Error) => void;
}

/** Keys a reap releases per call. */
const REAP_CHUNK = 100;

/**
 * The shared {@linkcode OccupancyStore} on Deno KV.
 *
 * @example
 * ```ts ignore
 * const store = new KvOccupancyStore({ kv: await Deno.openKv(":memory:") });
 * await store.hold("room:lobby", "node-a"); // true: first anywhere
 * ```
 */
export class KvOccupancyStore implements OccupancyStore {
  readonly kind = "kv";
  readonly shared = true;
  readonly #handle: KvHandle;
  readonly #base: Deno.KvKey;

  /** @param options the database and prefix */
  constructor(options: KvOccupancyStoreOptions) {
    this.#handle = new KvHandle(options, {
      name: "occupancy store",
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    });
    this.#base = [...options.prefix ?? ["realtime"], "occupancy"];
  }

  hold(key: string, node: string): Promise<boolean> {
    const b = this.#base;
    return this.#handle.run("hold", async (kv) => {
      const [count, mine] = await kv.getMany<[Deno.KvU64, boolean]>([
        [...b, "c", key],
        [...b, "k", key, node],
      ]);
      if (mine.versionstamp !== null) return false;
      const before = count.value instanceof Deno.KvU64 ? count.value.value : 0n;
      const op = kv.atomic().check(count, mine)
        .set([...b, "c", key], new Deno.KvU64(before + 1n))
        .set([...b, "k", key, node], true)
        .set([...b, "n", node, key], true)
        .set([...b, "nodes", node], true);
      return (await op.commit()).ok ? before === 0n : CONFLICT;
    });
  }

  release(key: string, node: string): Promise<boolean> {
    return this.#handle.run("release", (kv) => this.#release(kv, key, node));
  }

  list(prefix: string, limit: number): Promise<string[]> {
    const counts = [...this.#base, "c"];
    return this.#handle.run("list keys", async (kv) => {
      const out: string[] = [];
      if (limit <= 0) return out;
      // From the prefix on, in order: the matching keys come first.
      for await (const { key } of kv.list({ prefix: counts, start: [...counts, prefix] })) {
        const held = String(key.at(-1));
        if (!held.startsWith(prefix)) break;
        out.push(held);
        if (out.length >= limit) break;
      }
      return out;
    });
  }

  nodes(): Promise<string[]> {
    return this.#handle.run("list nodes", async (kv) => {
      const out: string[] = [];
      for await (const { key } of kv.list({ prefix: [...this.#base, "nodes"] })) {
        out.push(String(key.at(-1)));
      }
      return out;
    });
  }

  reap(node: string): Promise<{ emptied: string[]; done: boolean }> {
    const b = this.#base;
    return this.#handle.run("reap a node", async (kv) => {
      const keys: string[] = [];
      const list = kv.list({ prefix: [...b, "n", node] }, { limit: REAP_CHUNK });
      for await (const { key } of list) keys.push(String(key.at(-1)));
      const emptied: string[] = [];
      for (const key of keys) if (await this.#releaseRetrying(kv, key, node)) emptied.push(key);
      const done = keys.length < REAP_CHUNK;
      if (done) await kv.delete([...b, "nodes", node]);
      return { emptied, done };
    });
  }

  health(): StoreHealth {
    return this.#handle.health();
  }

  close(): Promise<void> {
    return this.#handle.close();
  }

  async #releaseRetrying(kv: Deno.Kv, key: string, node: string): Promise<boolean> {
    for (;;) {
      const result = await this.#release(kv, key, node);
      if (result !== CONFLICT) return result;
    }
  }

  async #release(kv: Deno.Kv, key: string, node: string): Promise<boolean | typeof CONFLICT> {
    const b = this.#base;
    const [count, mine] = await kv.getMany<[Deno.KvU64, boolean]>([
      [...b, "c", key],
      [...b, "k", key, node],
    ]);
    if (mine.versionstamp === null) return false;
    const before = count.value instanceof Deno.KvU64 ? count.value.value : 1n;
    const op = kv.atomic().check(count, mine)
      .delete([...b, "k", key, node])
      .delete([...b, "n", node, key]);
    if (before <= 1n) op.delete([...b, "c", key]);
    else op.set([...b, "c", key], new Deno.KvU64(before - 1n));
    return (await op.commit()).ok ? before <= 1n : CONFLICT;
  }
}
