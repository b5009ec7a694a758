/**
 * What the `/ws` handshake reads from a request, before any upgrade: the
 * credential and where it came from, the client address, and whether the
 * Origin is allowed. Everything here is pure: it reads headers and returns.
 *
 * @module
 */
import { parse as parseCookie } from "cookie";
import { bearer } from "./common.ts";

/** Where a credential was found. */
export type TokenSource = "header" | "subprotocol" | "query" | "cookie" | "ticket";

/** A credential found in a request. */
export interface Credential {
  /** The JWT, or the one-time ticket when `source` is `ticket`. */
  value: string;
  /** Where it came from (logged; the value never is). */
  source: TokenSource;
}

/** The subprotocol that carries a token: `Sec-WebSocket-Protocol: bearer, <jwt>`. */
export const BEARER_PROTOCOL = "bearer";

/** The one WebSocket version there is (RFC 6455 §4.1). */
export const WEBSOCKET_VERSION = "13";

/** Base64 of exactly 16 bytes: 22 characters and `==`. */
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{22}==$/;

/**
 * Whether the handshake's own fields are what RFC 6455 §4.2.1 requires: a
 * `Sec-WebSocket-Version` of 13 and a `Sec-WebSocket-Key` that is the base64
 * of 16 bytes. Deno upgrades with version 8, none, or any key at all.
 */
export function wellFormedWebSocketHandshake(req: Request): boolean {
  return req.headers.get("sec-websocket-version") === WEBSOCKET_VERSION &&
    WEBSOCKET_KEY.test(req.headers.get("sec-websocket-key") ?? "");
}

/** Parses `Sec-WebSocket-Protocol` into its offered entries. */
export function offeredProtocols(req: Request): string[] {
  const header = req.headers.get("sec-websocket-protocol");
  if (header === null) return [];
  return header.split(",").map((p) => p.trim()).filter((p) => p.length > 0);
}

/**
 * Finds the credential, in this order: `Authorization: Bearer`, the `bearer`
 * subprotocol, `?ticket=`, `?token=`, the auth cookie. The first source that is
 * present wins, even if its value is bad: falling through to a weaker source
 * would let a stale cookie mask a rejected header.
 */
export function findCredential(
  req: Request,
  url: URL,
  cookieName: string,
  protocols: readonly string[],
): Credential | null {
  // Present but not a Bearer credential counts as a bad header, not as absent.
  if (req.headers.has("authorization")) return { value: bearer(req) ?? "", source: "header" };
  const bearerAt = protocols.indexOf(BEARER_PROTOCOL);
  if (bearerAt !== -1) {
    return { value: protocols[bearerAt + 1] ?? "", source: "subprotocol" };
  }
  const ticket = url.searchParams.get("ticket");
  if (ticket !== null) return { value: ticket, source: "ticket" };
  const token = url.searchParams.get("token");
  if (token !== null) return { value: token, source: "query" };
  const cookieHeader = req.headers.get("cookie");
  if (cookieHeader !== null) {
    const value = parseCookie(cookieHeader)[cookieName];
    if (value !== undefined) return { value, source: "cookie" };
  }
  return null;
}

/** The TCP peer's address, whatever the headers say; `unknown` for other transports. */
export function peerAddress(remote: Deno.Addr | undefined): string {
  if (remote && (remote.transport === "tcp" || remote.transport === "udp")) return remote.hostname;
  return "unknown";
}

/**
 * The client's address. `X-Forwarded-For` is only believed behind a proxy we
 * were told about (`TRUST_PROXY=1`); we take its last entry, the one our proxy
 * added, since earlier entries are whatever the client sent.
 */
export function clientAddress(
  req: Request,
  remote: Deno.Addr | undefined,
  trustProxy: boolean,
): string {
  if (trustProxy) {
    const forwarded = req.headers.get("x-forwarded-for");
    const last = forwarded?.split(",").map((s) => s.trim()).filter(Boolean).pop();
    if (last) return last.slice(0, 64);
  }
  return peerAddress(remote);
}

/**
 * Longest `Origin` and `Host` a ticket request may carry. A real origin is a
 * scheme, a DNS name (at most 253 characters) and a port; anything longer is
 * an attempt to make the ticket store and the audit log hold it.
 */
export const MAX_ORIGIN_LENGTH = 512;

/**
 * Cross-site WebSocket hijacking check. Browsers always send `Origin` on a
 * WebSocket handshake; its absence means a non-browser client, which is
 * allowed. With no allow-list configured, only same-origin pages may connect.
 */
export function originAllowed(
  origin: string | null,
  host: string | null,
  allowed: readonly string[] | undefined,
): boolean {
  if (origin === null) return true;
  if (allowed === undefined) {
    try {
      return host !== null && new URL(origin).host === host.toLowerCase();
    } catch {
      return false;
    }
  }
  return allowed.includes("*") || allowed.includes(origin);
}

/**
 * Whether a cookie credential may be used from this `Origin`: a browser
 * attaches cookies to a cross-site WebSocket handshake, so any page the user
 * visits could open a socket as them. Only the same origin and origins listed
 * by name in `ALLOWED_ORIGINS` may; `*` never extends to cookies. No `Origin`
 * means a non-browser client, which sent the cookie on purpose.
 */
export function cookieOriginAllowed(
  origin: string | null,
  host: string | null,
  allowed: readonly string[] | undefined,
): boolean {
  if (origin === null) return true;
  if (allowed?.includes(origin)) return true;
  try {
    return host !== null && new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

/** True for loopback addresses: the only ones dev-mode endpoints answer. */
export function isLoopback(address: string): boolean {
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}

/** Headers a proxy adds: a request carrying one was not made on this machine. */
const FORWARDING_HEADERS = ["x-forwarded-for", "forwarded", "x-real-ip"] as const;

/**
 * Whether a request was made on this machine: its TCP peer is loopback and
 * it names no forwarded client. Decided from the socket, never from
 * `X-Forwarded-For` (whoever connects can write that), and whatever
 * `TRUST_PROXY` says: a proxy on this machine connects from loopback, but the
 * client it forwards is not local.
 */
export function isLocalRequest(req: Request, remote: Deno.Addr | undefined): boolean {
  if (!isLoopback(peerAddress(remote))) return false;
  return FORWARDING_HEADERS.every((name) => !req.headers.has(name));
}
