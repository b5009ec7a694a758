/**
 * Hex digests the stores key things by: SHA-256 for caller-built strings
 * (tickets, long dedupe keys), SHA-1 for the Lua scripts Redis caches.
 *
 * @module
 */

/** SHA-256 of a string, as 64 hex digits. */
export function sha256Hex(value: string): Promise<string> {
  return digestHex("SHA-256", value);
}

/** SHA-1 of a string, as 40 hex digits (what Redis names a cached script by). */
export function sha1Hex(value: string): Promise<string> {
  return digestHex("SHA-1", value);
}

async function digestHex(algorithm: "SHA-1" | "SHA-256", value: string): Promise<string> {
  const digest = await crypto.subtle.digest(algorithm, new TextEncoder().encode(value));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
