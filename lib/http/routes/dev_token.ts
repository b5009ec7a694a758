/**
 * `GET /dev/token?sub=&rooms=&ttl=`: dev mode only, loopback only. Lets a
 * newcomer (and the demo page) connect within a minute.
 *
 * @module
 */
import { z } from "zod";
import type { Clock } from "../../clock.ts";
import { mintToken } from "../../dev.ts";
import { isLocalRequest } from "../handshake.ts";
import { apiError, json } from "../common.ts";

const DevTokenQuery = z.object({
  sub: z.string().regex(/^[A-Za-z0-9_\-.@]{1,64}$/, "sub must be 1-64 of A-Z a-z 0-9 _ - . @")
    .default("dev-user"),
  rooms: z.string().max(1024).default("*"),
  ttl: z.coerce.number().int().min(10).max(86_400).default(3600),
});

const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(["localhost", "127.0.0.1", "::1"]);

/**
 * Builds the handler; it answers 404 unless `devSecret` is set (dev mode).
 * `remote` is the TCP peer: the client address of `X-Forwarded-For` is never
 * used here, since any client can send that header.
 */
export function devTokenRoute(
  devSecret: Uint8Array | undefined,
  clock: Clock,
): (req: Request, url: URL, remote: Deno.Addr | undefined) => Promise<Response> {
  return async (req, url, remote) => {
    // A local request and a loopback Host: the second defeats DNS rebinding.
    const host = (req.headers.get("host") ?? "").replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
    if (devSecret === undefined || !isLocalRequest(req, remote) || !LOOPBACK_HOSTS.has(host)) {
      return apiError(404, "not_found", "not found");
    }
    const query = DevTokenQuery.safeParse(Object.fromEntries(url.searchParams));
    if (!query.success) {
      return apiError(400, "bad_request", query.error.issues[0]?.message ?? "bad query");
    }
    const { sub, ttl } = query.data;
    const rooms = query.data.rooms.split(",").map((r) => r.trim()).filter(Boolean);
    const token = await mintToken(devSecret, { sub, rooms, ttlSec: ttl });
    return json(200, { token, expiresAt: Math.floor(clock.now() / 1000) + ttl });
  };
}
