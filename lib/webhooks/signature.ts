/**
 * Request signatures for the backend: the native scheme
 * `X-Realtime-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>`
 * shared by webhooks and the synchronous hooks (issue 18), its verifier
 * (constant-time, with a replay window), and the plain body HMAC Pusher's
 * webhooks use.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";

/** The header the native scheme travels in. */
export const SIGNATURE_HEADER = "X-Realtime-Signature";

/** How far `t` may be from the receiver's clock, in seconds, by default. */
export const DEFAULT_TOLERANCE_SEC = 300;

/** Lowercase hex HMAC-SHA256 of `message`, keyed with the UTF-8 bytes of `secret`. */
export function hmacHex(secret: string, message: string): string {
  return createHmac("sha256", secret).update(message).digest("hex");
}

/**
 * The `X-Realtime-Signature` value of `body` sent at `nowMs`:
 * `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
 *
 * @example
 * ```ts
 * import { signBody } from "./signature.ts";
 * const header = signBody("s".repeat(32), '{"id":"b1"}', 1_700_000_000_000);
 * console.assert(header.startsWith("t=1700000000,v1="));
 * ```
 */
export function signBody(secret: string, body: string, nowMs: number): string {
  const t = Math.floor(nowMs / 1000);
  return `t=${t},v1=${hmacHex(secret, `${t}.${body}`)}`;
}

/** Options for {@linkcode verifyBody}. */
export interface VerifyOptions {
  /** The receiver's time, in ms. @default Date.now() */
  nowMs?: number;
  /** Largest accepted `|now − t|`, in seconds. @default 300 */
  toleranceSec?: number;
}

/**
 * Whether `header` is a valid `X-Realtime-Signature` of `body` made with
 * `secret` within the tolerance: what a receiver checks (the README shows
 * the same check in ten lines of TypeScript and of Python). Any `v1` of the
 * header may match (room for a secret rotation); comparison is constant-time.
 *
 * @example
 * ```ts
 * import { signBody, verifyBody } from "./signature.ts";
 * const secret = "s".repeat(32), now = Date.now();
 * console.assert(verifyBody(secret, "{}", signBody(secret, "{}", now), { nowMs: now }));
 * ```
 */
export function verifyBody(
  secret: string,
  body: string,
  header: string | null,
  options: VerifyOptions = {},
): boolean {
  const { nowMs = Date.now(), toleranceSec = DEFAULT_TOLERANCE_SEC } = options;
  if (header === null) return false;
  const parts = header.split(",").map((p) => p.trim().split("="));
  const t = parts.find(([k]) => k === "t")?.[1];
  if (t === undefined || !/^\d{1,12}$/.test(t)) return false;
  if (Math.abs(nowMs / 1000 - Number(t)) > toleranceSec) return false;
  const expected = Buffer.from(hmacHex(secret, `${t}.${body}`), "hex");
  return parts.some(([k, v]) =>
    k === "v1" && v !== undefined && /^[0-9a-f]{64}$/.test(v) &&
    timingSafeEqual(Buffer.from(v, "hex"), expected)
  );
}
