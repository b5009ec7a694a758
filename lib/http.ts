/**
 * Small HTTP helpers shared by the routes: refusals, JSON errors, bounded
 * body reads and constant-time secret comparison.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** A one-line plain-text refusal (handshake answers). */
export function refuse(status: number, message: string, headers: HeadersInit = {}): Response {
  return new Response(`${message}\n`, {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

/** A JSON body. */
export function json(status: number, body: unknown, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
  });
}

/** The API error shape: `{"error":{"code":..,"message":..}}`. */
export function apiError(
  status: number,
  code: string,
  message: string,
  headers: HeadersInit = {},
): Response {
  return json(status, { error: { code, message } }, headers);
}

/** The body was larger than allowed. */
export class BodyTooLargeError extends Error {
  /** @param limit the byte limit */
  constructor(readonly limit: number) {
    super(`request body over ${limit} bytes`);
    this.name = "BodyTooLargeError";
  }
}

/**
 * Reads a body as text, stopping as soon as it passes `limit` bytes, so a
 * client cannot make us buffer more than that whatever `Content-Length` says.
 */
export async function readBodyLimited(req: Request, limit: number): Promise<string> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > limit) throw new BodyTooLargeError(limit);
  if (req.body === null) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req.body) {
    size += chunk.byteLength;
    if (size > limit) throw new BodyTooLargeError(limit);
    chunks.push(chunk);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}

/** The credential of `Authorization: Bearer <x>`, or null. */
export function bearer(req: Request): string | null {
  const match = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(req.headers.get("authorization") ?? "");
  return match?.[1] ?? null;
}

/** Compares two secrets in time independent of where they differ (hashes first, so lengths match). */
export function secretsEqual(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}
