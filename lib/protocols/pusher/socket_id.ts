/**
 * Pusher socket ids: `\d+\.\d+`, told to the client in
 * `pusher:connection_established` and signed by the app's auth endpoint.
 *
 * @module
 */

const SOCKET_ID_PATTERN = /^\d{1,20}\.\d{1,20}$/;

/** A fresh socket id: two random numbers, as Pusher makes them. */
export function newSocketId(): string {
  const [a, b] = crypto.getRandomValues(new Uint32Array(2));
  return `${a}.${b}`;
}

/** Whether `id` has the socket id form (for the API's `socket_id` exclusion). */
export function validSocketId(id: string): boolean {
  return SOCKET_ID_PATTERN.test(id);
}
