/**
 * The Pusher HTTP API's request signatures, checked as Pusher checks them:
 * `auth_key` is the app's key, `auth_version` is `1.0`, `auth_timestamp` is
 * within 600 s of our clock, `body_md5` is the MD5 of the body, and
 * `auth_signature` is the hex HMAC-SHA256, with the app's secret, of
 * `METHOD\nPATH\nQUERY` where QUERY is every other parameter, keys
 * lowercased, sorted by key, joined as `key=value` with `&`, values
 * unescaped (what the `pusher` SDKs sign). Signatures are compared in
 * constant time; a refusal names the part that failed, never the secret.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { PusherApp } from "./apps.ts";
import { constantTimeEqual, hmacHex } from "./signature.ts";

/** How far `auth_timestamp` may be from our clock, in seconds (Pusher's window). */
export const MAX_TIMESTAMP_SKEW_SEC = 600;

/** The part of a signed request that failed: the audit's `reason`. */
export type ApiAuthFailure =
  | "auth_key"
  | "auth_version"
  | "auth_timestamp"
  | "body_md5"
  | "auth_signature";

/** A refused request: what failed, and the 401's message. */
export interface ApiAuthRefusal {
  readonly reason: ApiAuthFailure;
  readonly message: string;
}

/** The request as it is signed. */
export interface SignedRequest {
  /** `GET`, `POST`. */
  readonly method: string;
  /** The path as received (`/apps/1/events`). */
  readonly path: string;
  /** The query parameters. */
  readonly query: URLSearchParams;
}

// Longest string-to-sign quoted back in a refusal (it is built from the request alone).
const MAX_QUOTED = 512;

function refusal(reason: ApiAuthFailure, message: string): ApiAuthRefusal {
  return { reason, message };
}

/**
 * The checks that need no body: key, version and timestamp. Run before the
 * body is read, so a request that cannot be valid is refused at once.
 */
export function checkCredentials(
  app: Pick<PusherApp, "key">,
  query: URLSearchParams,
  nowMs: number,
): ApiAuthRefusal | undefined {
  const key = query.get("auth_key");
  if (key === null || !constantTimeEqual(key, app.key)) {
    return refusal("auth_key", "Invalid auth_key: it is not this app's key");
  }
  const version = query.get("auth_version");
  if (version !== "1.0") return refusal("auth_version", "Invalid auth_version: must be 1.0");
  const timestamp = query.get("auth_timestamp") ?? "";
  const now = Math.floor(nowMs / 1000);
  if (!/^\d{1,12}$/.test(timestamp)) {
    return refusal("auth_timestamp", "Invalid auth_timestamp: must be Unix time in seconds");
  }
  if (Math.abs(Number(timestamp) - now) > MAX_TIMESTAMP_SKEW_SEC) {
    return refusal(
      "auth_timestamp",
      `Timestamp expired: given ${timestamp}, server time ${now}, ` +
        `allowed within ${MAX_TIMESTAMP_SKEW_SEC} s`,
    );
  }
  return undefined;
}

/** Lowercase hex MD5 of a body's UTF-8 bytes (WebCrypto has no MD5). */
export function bodyMd5(body: string): string {
  return createHash("md5").update(body, "utf8").digest("hex");
}

/**
 * `METHOD\nPATH\nQUERY`: the string Pusher's clients sign.
 *
 * @example
 * ```ts
 * import { stringToSign } from "./api_auth.ts";
 * const query = new URLSearchParams("auth_version=1.0&auth_key=k&auth_signature=x");
 * stringToSign({ method: "GET", path: "/apps/1/channels", query });
 * // "GET\n/apps/1/channels\nauth_key=k&auth_version=1.0"
 * ```
 */
export function stringToSign(request: SignedRequest): string {
  const pairs: [string, string][] = [];
  for (const [key, value] of request.query) {
    const lower = key.toLowerCase();
    if (lower !== "auth_signature") pairs.push([lower, value]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const query = pairs.map(([key, value]) => `${key}=${value}`).join("&");
  return `${request.method.toUpperCase()}\n${request.path}\n${query}`;
}

/**
 * The checks over the body and the whole request: `body_md5` (required for
 * a non-empty body) and `auth_signature`. Call after
 * {@linkcode checkCredentials}.
 */
export async function checkSignature(
  app: Pick<PusherApp, "secret">,
  request: SignedRequest,
  body: string,
): Promise<ApiAuthRefusal | undefined> {
  const md5 = request.query.get("body_md5");
  if (body !== "" || md5 !== null) {
    if (md5 === null) return refusal("body_md5", "Missing body_md5: a body must be signed");
    if (!constantTimeEqual(md5.toLowerCase(), bodyMd5(body))) {
      return refusal("body_md5", "Invalid body_md5: it is not the MD5 of the body received");
    }
  }
  const signature = request.query.get("auth_signature") ?? "";
  const signed = stringToSign(request);
  const expected = await hmacHex(app.secret, signed);
  if (!constantTimeEqual(signature.toLowerCase(), expected)) {
    const quoted = JSON.stringify(signed.slice(0, MAX_QUOTED));
    return refusal(
      "auth_signature",
      `Invalid signature: expected the hex HMAC-SHA256 of ${quoted} with the app's secret`,
    );
  }
  return undefined;
}
