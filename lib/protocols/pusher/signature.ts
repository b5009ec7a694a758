/**
 * Pusher's signatures: hex HMAC-SHA256 with an app's secret, over channel
 * auth strings, signed-in user data, API requests and webhook bodies, and
 * their comparison in constant time.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();
const MAX_CACHED_KEYS = 1024;

function keyFor(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (key === undefined) {
    if (keys.size >= MAX_CACHED_KEYS) keys.clear();
    key = crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    keys.set(secret, key);
  }
  return key;
}

/**
 * Lowercase hex HMAC-SHA256 of `message` with `secret`.
 *
 * @example
 * ```ts
 * import { hmacHex } from "./signature.ts";
 * await hmacHex("secret", "1234.5678:private-chat"); // 64 hex characters
 * ```
 */
export async function hmacHex(secret: string, message: string): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await keyFor(secret), encoder.encode(message));
  return Array.from(new Uint8Array(mac), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Whether two strings are equal, in time that does not depend on where they
 * differ (it does depend on their lengths, which are public: 64 hex digits).
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  if (x.length !== y.length) {
    // Compare anyway so that a wrong length costs the same as a wrong digit.
    timingSafeEqual(x, x);
    return false;
  }
  return timingSafeEqual(x, y);
}

/**
 * Checks a `key:signature` auth string (channel auth, signin) against the
 * app's key and the HMAC of `message`: true only when both match.
 */
export async function verifyAuth(
  app: { key: string; secret: string },
  auth: string,
  message: string,
): Promise<boolean> {
  const colon = auth.indexOf(":");
  if (colon < 0) return false;
  const expected = await hmacHex(app.secret, message);
  const keyOk = constantTimeEqual(auth.slice(0, colon), app.key);
  const macOk = constantTimeEqual(auth.slice(colon + 1), expected);
  return keyOk && macOk;
}
