/**
 * Stream epochs: random, opaque, short enough for an envelope header
 * (`MAX_STREAM_EPOCH_LENGTH` in lib/bus/_codec.ts).
 *
 * @module
 */

/** A fresh epoch: 16 random bytes, base64url without padding (22 characters). */
export function newEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}
