/**
 * `POST /api/publish`: backends push to a room without a socket, through the
 * same delivery path (and bus) as client messages.
 *
 * @module
 */
import { z } from "zod";
import type { AuditSink } from "../audit.ts";
import type { TokenVerifier } from "../auth.ts";
import type { Clock } from "../clock.ts";
import type { Config } from "../config.ts";
import { apiError, BodyTooLargeError, json, readBodyLimited } from "../http.ts";
import type { Counters } from "../metrics.ts";
import { encodeRoomMessage, RoomName } from "../protocol.ts";
import { MessageTooLargeError, type RoomManager } from "../rooms.ts";
import { adminAuthorizer, adminEnabled } from "./_admin_auth.ts";

/** The request body. */
export const PublishBody = z.strictObject({
  room: RoomName,
  payload: z.custom<unknown>((v) => v !== undefined, "payload is required"),
});

/** What the publish API needs. */
export interface PublishApiDeps {
  config: Config;
  verifier: TokenVerifier;
  rooms: RoomManager;
  clock: Clock;
  audit: AuditSink;
  counters: Counters;
}

/** Builds the `POST /api/publish` handler. */
export function publishApi(deps: PublishApiDeps): (req: Request, ip: string) => Promise<Response> {
  const { config, rooms, clock, audit } = deps;
  const authorize = adminAuthorizer(deps);

  return async (req, ip) => {
    if (!adminEnabled(config)) {
      return apiError(404, "not_found", "the publish API is disabled: set API_KEY or ADMIN_ROLE");
    }
    const caller = await authorize(req, ip, "publish_api");
    if (caller instanceof Response) return caller;
    let text: string;
    try {
      text = await readBodyLimited(req, config.maxMessageBytes);
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        return apiError(413, "payload_too_large", `body over ${config.maxMessageBytes} bytes`);
      }
      return apiError(400, "bad_request", "the body could not be read");
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return apiError(400, "bad_request", "body is not valid JSON");
    }
    const parsed = PublishBody.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return apiError(400, "bad_request", `${issue?.path.join(".") || "body"}: ${issue?.message}`);
    }
    const { room, payload } = parsed.data;
    const frame = encodeRoomMessage(room, JSON.stringify(payload), caller.from, clock.now());
    let recipients: number;
    try {
      recipients = rooms.publish(room, frame);
    } catch (err) {
      if (!(err instanceof MessageTooLargeError)) throw err;
      return apiError(413, "payload_too_large", "message too large for the bus");
    }
    audit.record("publish_api", { from: caller.from, room, recipients, ip });
    return json(202, { recipients });
  };
}
