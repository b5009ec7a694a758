/**
 * `POST /api/publish`: backends push to a room without a socket, through the
 * same delivery path (and bus) as client messages.
 *
 * @module
 */
import { z } from "zod";
import type { AuditSink } from "../../audit.ts";
import type { TokenVerifier } from "../../core/auth.ts";
import type { Clock } from "../../clock.ts";
import type { AdminConfig, LimitsConfig } from "../../config.ts";
import { apiError, json, readJsonBody } from "../common.ts";
import type { Counters } from "../../metrics.ts";
import {
  encodeRoomMessage,
  jsonDeeperThan,
  parseJsonRefusingProto,
  ProtoKeyError,
  RoomName,
} from "../../protocols/native/protocol.ts";
import { MessageTooLargeError, type PublishOutcome } from "../../core/rooms.ts";
import { retryAfter, StoreUnavailableError } from "../../store/types.ts";
import type { ApiPublisher } from "../../core/live_dedupe.ts";
import { adminAuthorizer, adminEnabled } from "./_admin_auth.ts";

/** The request body. */
export const PublishBody = z.strictObject({
  room: RoomName,
  payload: z.custom<unknown>((v) => v !== undefined, "payload is required"),
  /**
   * A retry with the same key within `DEDUP_WINDOW_SEC` is not delivered
   * again: history rooms answer the first publish's offset; rooms without
   * history are remembered by the isolate that took the call.
   */
  idempotencyKey: z.string().min(1).max(128).optional(),
});

/** What the publish API needs. */
export interface PublishApiDeps {
  /** `API_KEY` and `ADMIN_ROLE`: who may call it. */
  admin: Pick<AdminConfig, "apiKey" | "role">;
  /** The body's size, depth and arrival deadline. */
  limits: Pick<LimitsConfig, "maxMessageBytes" | "maxPayloadDepth" | "bodyTimeoutMs">;
  verifier: TokenVerifier;
  /** Publishes with the caller's idempotency key (lib/core/live_dedupe.ts). */
  publish: ApiPublisher;
  clock: Clock;
  audit: AuditSink;
  counters: Counters;
  /** Aborted when the server shuts down: a body still arriving is abandoned. */
  shutdownSignal: AbortSignal;
}

/** Builds the `POST /api/publish` handler. */
export function publishApi(deps: PublishApiDeps): (req: Request, ip: string) => Promise<Response> {
  const { admin, limits, publish, clock, audit, counters } = deps;
  const authorize = adminAuthorizer(deps);

  return async (req, ip) => {
    if (!adminEnabled(admin)) {
      return apiError(404, "not_found", "the publish API is disabled: set API_KEY or ADMIN_ROLE");
    }
    const caller = await authorize(req, ip, "publish_api");
    if (caller instanceof Response) return caller;
    const body = await readJsonBody(req, PublishBody, {
      limit: limits.maxMessageBytes,
      timeoutMs: limits.bodyTimeoutMs,
      signal: deps.shutdownSignal,
      // The body is one level above the payload.
      precheck: (text) =>
        jsonDeeperThan(text, limits.maxPayloadDepth + 1)
          ? `payload: nests arrays/objects deeper than ${limits.maxPayloadDepth} levels`
          : undefined,
      parse: parseJsonRefusingProto,
      // Outside the payload, the key would fail the strict schema anyway.
      notJson: (err) =>
        err instanceof ProtoKeyError ? `payload: ${err.message}` : "body is not valid JSON",
    });
    if (body instanceof Response) return body;
    const { room, payload, idempotencyKey } = body;
    const frame = encodeRoomMessage(room, JSON.stringify(payload), caller.from, clock.now());
    let outcome: PublishOutcome;
    try {
      outcome = await publish(room, frame, { from: caller.from, idempotencyKey });
    } catch (err) {
      if (err instanceof MessageTooLargeError) {
        return apiError(413, "payload_too_large", "message too large for the bus");
      }
      if (err instanceof StoreUnavailableError) {
        counters.unavailable++;
        return apiError(
          503,
          "unavailable",
          "the history store is unavailable; retry later",
          retryAfter(err),
        );
      }
      throw err;
    }
    const { recipients, position, duplicate } = outcome;
    audit.record("publish_api", { from: caller.from, room, recipients, ip, duplicate });
    if (duplicate === true) {
      counters.duplicates++;
      const at = position === undefined ? {} : { offset: position.offset, epoch: position.epoch };
      return json(200, { recipients, ...at, duplicate });
    }
    if (position === undefined) return json(202, { recipients });
    return json(202, { recipients, offset: position.offset, epoch: position.epoch });
  };
}
