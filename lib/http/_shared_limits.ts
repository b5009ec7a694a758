/**
 * Opens shared limits when `LIMITS_STORE` is set: the store, its up/down
 * state (each change audited, so a fall back to per-isolate limits is in
 * the log), and the cluster-wide connection caps. Undefined without it.
 *
 * @module
 */
import type { AuditSink } from "../audit.ts";
import type { Clock } from "../clock.ts";
import type { Config } from "../config.ts";
import { SharedCounts, SharedLimits } from "../core/shared_limits.ts";
import { errorMessage } from "../errors.ts";
import { createLimitsStore } from "../store/limits/from_config.ts";

/** What {@linkcode openSharedLimits} needs besides the configuration. */
export interface SharedLimitsDeps {
  clock: Clock;
  audit: AuditSink;
  /** This node's id (the bus's `instanceId`). */
  node: string;
}

/** The limits store's state and the connection caps, when `LIMITS_STORE` is set. */
export async function openSharedLimits(
  config: Pick<Config, "store" | "sharedLimits">,
  deps: SharedLimitsDeps,
): Promise<{ limits: SharedLimits; caps: SharedCounts } | undefined> {
  const { clock, audit, node } = deps;
  const store = await createLimitsStore(config, {
    clock,
    onError: (err) => audit.record("bus_error", { error: `limits: ${errorMessage(err)}` }),
  });
  if (store === undefined) return undefined;
  const limits = new SharedLimits({
    store,
    node,
    clock,
    onChange: (shared, detail) =>
      audit.record("bus_error", {
        error: shared
          ? "limits: the limits store answers again; limits are shared"
          : `limits: falling back to per-isolate limits (${detail})`,
      }),
  });
  return { limits, caps: new SharedCounts(limits) };
}
