/**
 * `GET /api/history` and `GET /api/presence`: what backends read without a
 * socket (the server SDKs' `history` and `presence`), with the publish API's
 * authorization. History pages are the ones members get over `/ws`;
 * presence is read from the presence store, so it counts every node.
 *
 * @module
 */
import type { AuditSink } from "../../audit.ts";
import type { TokenVerifier } from "../../core/auth.ts";
import { type HistoryReader, NoHistoryError } from "../../core/history_reader.ts";
import type { AdminConfig } from "../../config.ts";
import type { Counters } from "../../metrics.ts";
import { MAX_HISTORY_LIMIT, RoomName, withPosition } from "../../protocols/native/protocol.ts";
import type { PresenceStore } from "../../store/presence/types.ts";
import { retryAfter, StoreUnavailableError } from "../../store/types.ts";
import { apiError, json } from "../common.ts";
import { adminAuthorizer, adminEnabled } from "./_admin_auth.ts";

/** What the read API needs. */
export interface ReadApiDeps {
  /** `API_KEY` and `ADMIN_ROLE`: who may call it. */
  admin: Pick<AdminConfig, "apiKey" | "role">;
  verifier: TokenVerifier;
  audit: AuditSink;
  counters: Counters;
  history: HistoryReader;
  /** Absent when no room tracks presence. */
  presenceStore: PresenceStore | undefined;
  /** Whether a room tracks presence (policy and `PRESENCE`). */
  presenceFor(room: string): boolean;
}

/** The read routes' handlers. */
export interface ReadApi {
  /** `GET /api/history?room=&limit=&before=`. */
  history(req: Request, url: URL, ip: string): Promise<Response>;
  /** `GET /api/presence?room=`. */
  presence(req: Request, url: URL, ip: string): Promise<Response>;
}

/** An integer query parameter in `[min, max]`, its default, or an error message. */
function intParam(url: URL, name: string, min: number, max: number): number | undefined | string {
  const raw = url.searchParams.get(name);
  if (raw === null) return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    return `${name}: must be an integer from ${min} to ${max}, current value is ${
      JSON.stringify(raw)
    }`;
  }
  return value;
}

function roomParam(url: URL): string | Response {
  const room = url.searchParams.get("room");
  if (room === null || !RoomName.safeParse(room).success) {
    return apiError(400, "bad_request", "room: must be 1-128 of A-Z a-z 0-9 _ - . : @ /");
  }
  return room;
}

/** Builds the read API. */
export function readApi(deps: ReadApiDeps): ReadApi {
  const { admin, history, presenceStore, counters } = deps;
  const authorize = adminAuthorizer(deps);
  const gate = async (req: Request, url: URL, ip: string, source: string) => {
    if (!adminEnabled(admin)) {
      return apiError(404, "not_found", "the read API is disabled: set API_KEY or ADMIN_ROLE");
    }
    const caller = await authorize(req, ip, source);
    return caller instanceof Response ? caller : roomParam(url);
  };
  const unavailable = (err: StoreUnavailableError, what: string) => {
    counters.unavailable++;
    return apiError(503, "unavailable", `the ${what} store is unavailable; retry later`, {
      ...retryAfter(err),
    });
  };

  return {
    async history(req, url, ip) {
      const room = await gate(req, url, ip, "history_api");
      if (room instanceof Response) return room;
      const limit = intParam(url, "limit", 1, MAX_HISTORY_LIMIT) ?? 100;
      const before = intParam(url, "before", 1, Number.MAX_SAFE_INTEGER);
      if (typeof limit === "string") return apiError(400, "bad_request", limit);
      if (typeof before === "string") return apiError(400, "bad_request", before);
      try {
        const page = await history.page(room, { limit, before });
        const { epoch, offset } = page.position;
        const messages = page.entries.map((e) =>
          JSON.parse(withPosition(e.frame, e.offset, epoch))
        );
        return json(200, { messages, offset, epoch, more: page.more });
      } catch (err) {
        if (err instanceof NoHistoryError) return apiError(400, "bad_request", err.message);
        if (err instanceof StoreUnavailableError) return unavailable(err, "history");
        throw err;
      }
    },
    async presence(req, url, ip) {
      const room = await gate(req, url, ip, "presence_api");
      if (room instanceof Response) return room;
      if (presenceStore === undefined || !deps.presenceFor(room)) {
        return apiError(400, "bad_request", `room ${JSON.stringify(room)} does not track presence`);
      }
      try {
        const byUser = new Map<string, { userId: string; info?: unknown; connections: number }>();
        for (const users of (await presenceStore.list(room)).values()) {
          for (const [userId, entry] of users) {
            const member = byUser.get(userId) ?? { userId, connections: 0 };
            member.connections += entry.connections;
            if (entry.info !== undefined) member.info = entry.info;
            byUser.set(userId, member);
          }
        }
        return json(200, { room, members: [...byUser.values()], count: byUser.size });
      } catch (err) {
        if (err instanceof StoreUnavailableError) return unavailable(err, "presence");
        throw err;
      }
    },
  };
}
