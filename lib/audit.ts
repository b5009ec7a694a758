/**
 * The audit log: one structured record per security-relevant event. Tokens
 * never reach it; callers pass ids, reasons and addresses only.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";

/** Every event the audit log records. */
export type AuditEvent =
  | "connect"
  | "auth_failure"
  | "handshake_refused"
  | "join"
  | "deny"
  | "leave"
  | "rate_limited"
  | "flood_closed"
  | "refresh"
  | "refresh_failed"
  | "signin"
  | "expiry"
  | "slow_consumer"
  | "frame_too_big"
  | "ticket_issued"
  | "publish_api"
  | "revoke"
  | "unrevoke"
  | "disconnect"
  | "bus_error"
  | "history_gap"
  | "replay_interrupted"
  | "webhook_dropped"
  | "hook_failed"
  | "hook_breaker"
  | "hook_denied"
  | "internal_error";

/** Field values allowed in an audit record. */
export type AuditFields = Record<string, string | number | boolean | null | undefined>;

/** Receives audit records. */
export interface AuditSink {
  /** Records one event. Must be cheap and must not throw. */
  record(event: AuditEvent, fields: AuditFields): void;
}

const WARNINGS: ReadonlySet<AuditEvent> = new Set([
  "auth_failure",
  "flood_closed",
  "slow_consumer",
  "frame_too_big",
  "bus_error",
  "history_gap",
  "replay_interrupted",
  "webhook_dropped",
  "internal_error",
]);

/**
 * The default sink: the `["realtime", "audit"]` LogTape category. What it
 * prints, where and at which level is set up by `configureLogging` in
 * `log.ts`; with LogTape unconfigured (tests) it prints nothing.
 */
export function logtapeAuditSink(): AuditSink {
  const logger = getLogger(["realtime", "audit"]);
  return {
    record(event, fields) {
      if (WARNINGS.has(event)) logger.warn(event, { event, ...fields });
      else logger.info(event, { event, ...fields });
    },
  };
}

/** An in-memory sink for tests and tooling. */
export class MemoryAuditSink implements AuditSink {
  /** Everything recorded, oldest first. */
  readonly records: { event: AuditEvent; fields: AuditFields }[] = [];
  record(event: AuditEvent, fields: AuditFields): void {
    this.records.push({ event, fields });
  }
  /** Records of one event. */
  of(event: AuditEvent): AuditFields[] {
    return this.records.filter((r) => r.event === event).map((r) => r.fields);
  }
}
