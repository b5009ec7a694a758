/**
 * Dedupe keys of idempotent publishes to history rooms: one per (caller,
 * request id), unambiguous whatever characters the ids hold. The store adds
 * the room.
 *
 * @module
 */

/** A socket publish's key: the user id, length-prefixed, then the request `id`. */
export function socketDedupeKey(userId: string, id: string): string {
  return `${userId.length}:${userId}:${id}`;
}

/**
 * A `POST /api/publish` key: prefixed `api:` so that it never equals a socket
 * key (those start with a digit), then the caller and its `idempotencyKey`.
 */
export function apiDedupeKey(from: string, idempotencyKey: string): string {
  return `api:${from.length}:${from}:${idempotencyKey}`;
}
