/**
 * Token minting for development: `deno task token`, dev mode's console token
 * and its loopback-only `/dev/token` endpoint. Never used to verify.
 *
 * @module
 */
import { SignJWT } from "jose";

/** What a minted token says. */
export interface MintOptions {
  /** The user id (`sub`). */
  sub: string;
  /** Room patterns granting join and publish. @default [] */
  rooms?: readonly string[];
  /** Room patterns granting join only. @default [] */
  roomsReadonly?: readonly string[];
  /** Roles (e.g. the admin role for the publish API). @default [] */
  roles?: readonly string[];
  /** Lifetime in seconds. @default 3600 */
  ttlSec?: number;
  /** HMAC algorithm. @default "HS256" */
  alg?: "HS256" | "HS384" | "HS512";
  issuer?: string;
  audience?: string;
  /** Token id (`jti`), the handle for revoking this one token. @default none */
  jti?: string;
  /** `iat` in seconds since the epoch. @default now */
  issuedAt?: number;
  /** The presence `info` claim (a JSON object; anything else is refused by the server). */
  info?: unknown;
}

/**
 * Signs an HMAC JWT with `secret`.
 *
 * @example
 * ```ts
 * import { mintToken } from "./dev.ts";
 * const token = await mintToken(new TextEncoder().encode("x".repeat(32)), { sub: "alice", rooms: ["chat:*"] });
 * ```
 */
export async function mintToken(secret: Uint8Array, options: MintOptions): Promise<string> {
  const { sub, rooms = [], roomsReadonly = [], roles = [], ttlSec = 3600, alg = "HS256" } = options;
  const claims: Record<string, unknown> = {};
  if (rooms.length > 0) claims.rooms = rooms;
  if (roomsReadonly.length > 0) claims.rooms_readonly = roomsReadonly;
  if (roles.length > 0) claims.roles = roles;
  if (options.info !== undefined) claims.info = options.info;
  let jwt = new SignJWT(claims).setProtectedHeader({ alg, typ: "JWT" }).setSubject(sub)
    .setIssuedAt(options.issuedAt).setExpirationTime(`${ttlSec}s`);
  if (options.issuer !== undefined) jwt = jwt.setIssuer(options.issuer);
  if (options.audience !== undefined) jwt = jwt.setAudience(options.audience);
  if (options.jti !== undefined) jwt = jwt.setJti(options.jti);
  return await jwt.sign(secret);
}

/** Parses durations such as `90`, `90s`, `15m`, `1h`, `7d` into seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!match) {
    throw new TypeError(`Cannot parse duration: current value is "${text}" (use 90s, 15m, 1h, 7d)`);
  }
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[match[2] as "" | "s" | "m" | "h" | "d"];
  return Number(match[1]) * unit;
}
