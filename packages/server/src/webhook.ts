/**
 * Verifying what the server signs for your backend (webhooks and hooks):
 * `X-Realtime-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
 * checked in constant time within a replay window. Web Crypto only, so it
 * runs the same in Node, Deno, Bun and edge runtimes.
 *
 * @module
 */

/** The header the signature travels in. */
export const SIGNATURE_HEADER = "X-Realtime-Signature";

/** Options for {@linkcode verifyWebhook}. */
export interface VerifyWebhookOptions {
  /** Largest accepted distance between `t` and now, in seconds. @default 300 */
  toleranceSec?: number;
  /** The receiver's time in ms. @default Date.now() */
  nowMs?: number;
}

const encoder = new TextEncoder();

/** Lowercase hex HMAC-SHA256 of `message` keyed with `secret`. */
export async function hmacSha256Hex(
  secret: string,
  message: string,
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, encoder.encode(message)),
  );
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Compares two strings without stopping at the first difference. */
function equalConstantTime(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * Whether `header` is a valid signature of `body` (the raw request body, as
 * received, before parsing) made with `secret` within the tolerance. Any
 * `v1` in the header may match, which leaves room for a secret rotation.
 *
 * @example
 * ```ts ignore
 * import { verifyWebhook, SIGNATURE_HEADER } from "@realtime/server-sdk";
 * const body = await req.text();
 * if (!(await verifyWebhook(secret, body, req.headers.get(SIGNATURE_HEADER)))) {
 *   return new Response("bad signature", { status: 401 });
 * }
 * ```
 *
 * @param secret the server's `WEBHOOK_SECRET` (or `HOOK_SECRET`)
 * @param body the raw body
 * @param header the `X-Realtime-Signature` value, or `null` when missing
 * @param options tolerance and clock
 */
export async function verifyWebhook(
  secret: string,
  body: string,
  header: string | null | undefined,
  options: VerifyWebhookOptions = {},
): Promise<boolean> {
  const { toleranceSec = 300, nowMs = Date.now() } = options;
  if (header === null || header === undefined) return false;
  const parts = header.split(",").map((p) => p.trim().split("="));
  const t = parts.find(([k]) => k === "t")?.[1];
  if (t === undefined || !/^\d{1,12}$/.test(t)) return false;
  if (Math.abs(nowMs / 1000 - Number(t)) > toleranceSec) return false;
  const expected = await hmacSha256Hex(secret, `${t}.${body}`);
  let ok = false;
  for (const [k, v] of parts) {
    if (k === "v1" && v !== undefined && /^[0-9a-f]{64}$/.test(v)) {
      ok = equalConstantTime(v, expected) || ok;
    }
  }
  return ok;
}

/**
 * Signs `body` as the server does: for tests of your receiver.
 *
 * @param secret the shared secret
 * @param body the raw body
 * @param nowMs the signing time @default Date.now()
 */
export async function signWebhook(
  secret: string,
  body: string,
  nowMs: number = Date.now(),
): Promise<string> {
  const t = Math.floor(nowMs / 1000);
  return `t=${t},v1=${await hmacSha256Hex(secret, `${t}.${body}`)}`;
}
