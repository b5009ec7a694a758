/**
 * The shared limits' variables (`LIMITS_*`): their zod fields and the
 * `sharedLimits` section they make. Merged into the operator schema by
 * lib/_config_env.ts; `LIMITS_STORE=redis` needs a Redis server as
 * `STORE=redis` does (checked there).
 *
 * @module
 */
import { z } from "zod";

const int = (min: number, max: number) =>
  z.string().trim().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(
    z.number().int().min(min).max(max),
  );

/** The `LIMITS_*` fields of the environment schema. */
export const limitsEnvFields = {
  LIMITS_STORE: z.enum(["redis", "kv"], { error: "must be redis or kv" }).optional(),
  LIMITS_LEASE: int(1, 1_000_000).optional(),
  LIMITS_TTL_MS: int(1000, 3_600_000).default(30_000),
};

/** The parsed `LIMITS_*` variables. */
type LimitsEnv = z.output<z.ZodObject<typeof limitsEnvFields>>;

/** The `sharedLimits` section of the configuration: where limits are shared, if anywhere. */
export interface SharedLimitsConfig {
  /**
   * `LIMITS_STORE`: where the per-user message bucket, the per-user and
   * per-app connection caps and the per-IP handshake rate are kept for the
   * whole cluster; undefined: each isolate keeps its own.
   */
  store: "redis" | "kv" | undefined;
  /** `LIMITS_LEASE`: tokens an isolate takes from a shared bucket per round trip (default: a tenth of the bucket). */
  lease: number | undefined;
  /** `LIMITS_TTL_MS`: a node's connection counts lapse this long after its last write (a crashed node's heal). */
  ttlMs: number;
}

/** The `sharedLimits` section. */
export function sharedLimitsSection(env: LimitsEnv): SharedLimitsConfig {
  return { store: env.LIMITS_STORE, lease: env.LIMITS_LEASE, ttlMs: env.LIMITS_TTL_MS };
}
