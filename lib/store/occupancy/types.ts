/**
 * Occupancy: which nodes hold what (a room with local members, a user with
 * local connections, a user in a presence room), so that "the first
 * anywhere" and "the last anywhere" are decided once for the whole cluster
 * (`room_occupied`/`room_vacated`, `user_online`/`user_offline`,
 * `presence_joined`/`presence_left`). One interface; one file per backend
 * (`memory.ts`, `redis.ts`, `kv.ts`), all held to one contract: the cases in
 * `tests/_occupancy_contract.ts`, run on each by
 * `tests/occupancy_store_contract_test.ts`.
 *
 * Contract (every backend):
 * - `hold(key, node)` answers true exactly when no node held `key` before
 *   (the first anywhere); holding again is a no-op answering false.
 * - `release(key, node)` answers true exactly when `node` held `key` and no
 *   node holds it now (the last anywhere); releasing what is not held is a
 *   no-op answering false.
 * - `reap(node)` releases everything `node` holds (a node found dead) and
 *   answers the keys it was the last holder of; run by several nodes at
 *   once, each such key is answered to one of them only.
 * - `list(prefix, limit)` answers the keys some node holds that start with
 *   `prefix`, in code-unit order, at most `limit` (the Pusher API's channel
 *   list, cluster-wide).
 * - `nodes()` lists the nodes holding something (and maybe a few that held
 *   something earlier), for the liveness check that finds the dead.
 * - Faults reject with `StoreUnavailableError`.
 *
 * @module
 */
import type { Backend } from "../types.ts";

/** Where occupancy lives; see the module doc for the contract. */
export interface OccupancyStore extends Backend {
  /** True when every node reads the same holders (Redis, KV); false: this isolate only. */
  readonly shared: boolean;
  /**
   * `node` holds `key`; true when no node held it before.
   *
   * @throws {StoreUnavailableError}
   */
  hold(key: string, node: string): Promise<boolean>;
  /**
   * `node` lets go of `key`; true when it held it and no node holds it now.
   *
   * @throws {StoreUnavailableError}
   */
  release(key: string, node: string): Promise<boolean>;
  /**
   * The keys some node holds that start with `prefix`, sorted, at most `limit`.
   *
   * @throws {StoreUnavailableError}
   */
  list(prefix: string, limit: number): Promise<string[]>;
  /**
   * Nodes holding something.
   *
   * @throws {StoreUnavailableError}
   */
  nodes(): Promise<string[]>;
  /**
   * Releases everything `node` holds; the keys nobody holds any more, each
   * answered to one caller only. May answer in parts: call again until it
   * answers `done`.
   *
   * @throws {StoreUnavailableError}
   */
  reap(node: string): Promise<{ emptied: string[]; done: boolean }>;
}
