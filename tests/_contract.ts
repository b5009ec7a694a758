/**
 * The one contract-harness style every store concern uses (history,
 * presence, tickets, revocations), after hono's router tests: a concern
 * keeps one case list in `tests/_<concern>_contract.ts`, and its test file
 * runs that list unchanged against each backend with {@linkcode runContract},
 * one Deno test per backend and one step per case, each case on a fresh
 * fixture. The backend helpers here (a Redis server per suite, a KV database
 * per case) keep those test files a few lines per backend.
 *
 * @module
 */
import { RedisServer, redisServerPath, skipRedis } from "./_redis.ts";
import { RedisCluster } from "./_redis_cluster.ts";
import type { RedisClusterConfig } from "../lib/config.ts";

/** What a case gets: the store(s) under test; `close` releases everything the case opened. */
export interface Fixture {
  /** Releases the fixture's stores, databases and anything else it opened. */
  close(): Promise<void>;
}

/** One concern's contract: case name → case, run on a fresh fixture each. */
export type ContractCases<F extends Fixture> = Record<string, (fixture: F) => Promise<void>>;

/** How to run a contract on one backend. */
export interface ContractSuite<F extends Fixture> {
  /** Backend name, shown in test names. */
  name: string;
  /** Skip (the reason is printed where the flag is computed) when the backend cannot run here. */
  ignore?: boolean;
  /** Once before the cases (e.g. start a Redis server). */
  before?(): Promise<void>;
  /** Once after the cases, even when one failed. */
  after?(): Promise<void>;
  /** A fresh, isolated fixture for one case. */
  open(): Promise<F>;
}

/**
 * Registers one Deno test, `<concern> store contract: <backend>`, with one
 * step per case.
 *
 * @example
 * ```ts ignore
 * runContract("ticket", ticketCases, { name: "memory", open: openMemory });
 * ```
 */
export function runContract<F extends Fixture>(
  concern: string,
  cases: ContractCases<F>,
  suite: ContractSuite<F>,
): void {
  Deno.test({
    name: `${concern} store contract: ${suite.name}`,
    ignore: suite.ignore ?? false,
    async fn(t) {
      await suite.before?.();
      try {
        for (const [name, run] of Object.entries(cases)) {
          await t.step(name, async () => {
            const fixture = await suite.open();
            try {
              await run(fixture);
            } finally {
              await fixture.close();
            }
          });
        }
      } finally {
        await suite.after?.();
      }
    },
  });
}

/** One `redis-server` shared by a suite's cases (each case keys under its own prefix). */
export interface RedisSuite {
  /** What {@linkcode runContract} takes: skip without Redis, start it before, stop it after. */
  readonly hooks: Pick<ContractSuite<Fixture>, "ignore" | "before" | "after">;
  /** The running server (once the suite started). */
  readonly server: RedisServer;
  /** A key prefix no other case uses. */
  prefix(): string;
}

/**
 * A Redis server for one suite: spread `hooks` into the suite given to
 * {@linkcode runContract} and use `server` in `open`.
 */
export function redisSuite(): RedisSuite {
  let running: RedisServer | undefined;
  return {
    hooks: {
      ignore: skipRedis,
      async before() {
        if (redisServerPath === undefined) {
          throw new Error("CI is set but redis-server is not on PATH");
        }
        running = await RedisServer.start(redisServerPath);
      },
      async after() {
        await running?.stop();
      },
    },
    get server() {
      if (running === undefined) throw new Error("the Redis suite has not started");
      return running;
    },
    prefix: () => `contract-${crypto.randomUUID()}`,
  };
}

/** A 3-primary Redis Cluster shared by a suite's cases (each case keys under its own prefix). */
export interface RedisClusterSuite {
  /** What {@linkcode runContract} takes: skip without Redis, start the cluster before, stop it after. */
  readonly hooks: Pick<ContractSuite<Fixture>, "ignore" | "before" | "after">;
  /** The running cluster (once the suite started). */
  readonly cluster: RedisCluster;
  /** Where the stores find it (`REDIS_CLUSTER_NODES`). */
  readonly target: RedisClusterConfig;
  /** A key prefix no other case uses. */
  prefix(): string;
}

/**
 * A Redis Cluster for one suite, as {@linkcode redisSuite} gives one Redis:
 * the same contracts run against it, key by key on the shards.
 */
export function redisClusterSuite(): RedisClusterSuite {
  let running: RedisCluster | undefined;
  const cluster = () => {
    if (running === undefined) throw new Error("the Redis Cluster suite has not started");
    return running;
  };
  return {
    hooks: {
      ignore: skipRedis,
      async before() {
        running = await RedisCluster.start();
      },
      async after() {
        await running?.[Symbol.asyncDispose]();
      },
    },
    get cluster() {
      return cluster();
    },
    get target() {
      return cluster().target;
    },
    prefix: () => `contract-${crypto.randomUUID()}`,
  };
}

/** The two KV variants every KV-backed concern runs: a file on disk, and `:memory:`. */
export const KV_VARIANTS = [
  { name: "kv (file)", inFile: true },
  { name: "kv (:memory:)", inFile: false },
] as const;

/** A fresh KV database for one case, and how to delete it. */
export interface CaseKv {
  /** The open database. */
  readonly kv: Deno.Kv;
  /** Closes it and removes its directory. */
  close(): Promise<void>;
}

/** Opens a fresh KV database: a file in a new temp directory, or `:memory:`. */
export async function openCaseKv(inFile: boolean): Promise<CaseKv> {
  const dir = inFile ? await Deno.makeTempDir({ prefix: "kv-contract-" }) : undefined;
  const kv = await Deno.openKv(dir === undefined ? ":memory:" : `${dir}/db.kv`);
  return {
    kv,
    async close() {
      kv.close();
      if (dir !== undefined) await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * Keeps every store a case opens, so the fixture closes them all whatever
 * the case did.
 */
export class Opened<S extends { close(): Promise<void> }> {
  readonly #stores: S[] = [];

  /** Remembers `store` and returns it. */
  add(store: S): S {
    this.#stores.push(store);
    return store;
  }

  /** Closes every store remembered. */
  async close(): Promise<void> {
    await Promise.all(this.#stores.map((store) => store.close()));
  }
}

/**
 * One case's backend for a concern whose cases open their own stores:
 * stores opened by one case share their data when `shared` (Redis, KV).
 */
export interface StoreFixture<S, O> extends Fixture {
  /** Whether stores opened by one case see the same data. */
  readonly shared: boolean;
  /** Opens another store on the backend (closed with the fixture). */
  open(options: O): S;
}

/** How to build one concern's store on each backend, with the options a case opens it with. */
export interface StoreMakers<S, O> {
  /** A store in this isolate's memory. */
  memory(options: O): S;
  /** A store on the suite's Redis (or Redis Cluster), under a key prefix of the case's own. */
  redis(where: { url: string | RedisClusterConfig; prefix: string }, options: O): S;
  /** A store on the case's KV database. */
  kv(kv: Deno.Kv, options: O): S;
}

/**
 * The suites that run a concern's contract on every backend: memory, Redis,
 * Redis Cluster, and KV on a file and in memory. A concern's test file passes each to its
 * contract, so that it says only how each backend's store is built.
 *
 * @example
 * ```ts ignore
 * for (const suite of storeSuites({ memory, redis, kv })) ticketStoreContract(suite);
 * ```
 */
export function storeSuites<S extends { close(): Promise<void> }, O>(
  make: StoreMakers<S, O>,
): ContractSuite<StoreFixture<S, O>>[] {
  const redis = redisSuite();
  const cluster = redisClusterSuite();
  return [
    { name: "memory", open: () => Promise.resolve(storeFixture(false, make.memory)) },
    {
      name: "redis",
      ...redis.hooks,
      open() {
        const where = { url: redis.server.url, prefix: redis.prefix() };
        return Promise.resolve(storeFixture(true, (options: O) => make.redis(where, options)));
      },
    },
    {
      name: "redis cluster",
      ...cluster.hooks,
      open() {
        const where = { url: cluster.target, prefix: cluster.prefix() };
        return Promise.resolve(storeFixture(true, (options: O) => make.redis(where, options)));
      },
    },
    ...KV_VARIANTS.map(({ name, inFile }) => ({
      name,
      async open() {
        const db = await openCaseKv(inFile);
        return storeFixture(true, (options: O) => make.kv(db.kv, options), () => db.close());
      },
    })),
  ];
}

function storeFixture<S extends { close(): Promise<void> }, O>(
  shared: boolean,
  make: (options: O) => S,
  closeBackend: () => Promise<void> = () => Promise.resolve(),
): StoreFixture<S, O> {
  const opened = new Opened<S>();
  return {
    shared,
    open: (options) => opened.add(make(options)),
    async close() {
      await opened.close();
      await closeBackend();
    },
  };
}
