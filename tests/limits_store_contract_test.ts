/**
 * Runs the limits store contract (tests/_limits_contract.ts) unchanged
 * against every backend: memory, Redis, and KV on a file and in memory.
 *
 * @module
 */
import { KvLimitsStore } from "../lib/store/limits/kv.ts";
import { MemoryLimitsStore } from "../lib/store/limits/memory.ts";
import { RedisLimitsStore } from "../lib/store/limits/redis.ts";
import type { LimitsStore } from "../lib/store/limits/types.ts";
import { storeSuites } from "./_contract.ts";
import { limitsStoreContract, type LimitsStoreOptions } from "./_limits_contract.ts";

const backends = storeSuites<LimitsStore, LimitsStoreOptions>({
  memory: (options) => new MemoryLimitsStore(options),
  redis: (where, options) => new RedisLimitsStore({ ...where, ...options }),
  kv: (kv, options) => new KvLimitsStore({ kv, ...options }),
});
for (const suite of backends) limitsStoreContract(suite);
