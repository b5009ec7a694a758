/**
 * The vocabulary of webhooks: the native event names (issue 18), the shape
 * every queued event has whatever protocol delivers it, and the event ids
 * receivers deduplicate on. Protocol-specific fields stay opaque here: the
 * engine carries an event's JSON as is and each sink's format encodes it.
 *
 * @module
 */
import { z } from "zod";

/** The native webhook events, in the order the README lists them. */
export const NATIVE_EVENT_NAMES = [
  "room_occupied",
  "room_vacated",
  "user_online",
  "user_offline",
  "presence_joined",
  "presence_left",
  "message_published",
  "connection_closed",
] as const;

/** One native webhook event name. */
export type NativeEventName = typeof NATIVE_EVENT_NAMES[number];

/** What `WEBHOOK_EVENTS` defaults to: every event but the high-volume `connection_closed`. */
export const DEFAULT_NATIVE_EVENTS: readonly NativeEventName[] = NATIVE_EVENT_NAMES.filter((n) =>
  n !== "connection_closed"
);

/**
 * One event as the engine queues and delivers it: its unique `id` (kept by
 * every retry, so receivers deduplicate on it), its `name`, when it happened
 * (`time_ms`), and the fields that apply to it.
 */
export const WebhookEventSchema = z.looseObject({
  id: z.string().min(1).max(64),
  name: z.string().min(1).max(200),
  time_ms: z.number().int().nonnegative(),
});

/** One queued event (see {@linkcode WebhookEventSchema}); other fields are JSON values. */
export type WebhookEvent = z.infer<typeof WebhookEventSchema>;

let lastMs = 0;
let sequence = 0;

/**
 * A new event id: a UUIDv7 (RFC 9562), so ids sort by creation time (the
 * queue backends keep oldest-first order by id) and never collide across
 * nodes. Ids made in the same millisecond by this isolate also sort in
 * creation order (a 12-bit counter in `rand_a`).
 *
 * @example
 * ```ts
 * import { newEventId } from "./events.ts";
 * const a = newEventId(), b = newEventId();
 * console.assert(a < b && a.length === 36);
 * ```
 */
export function newEventId(now = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    sequence = 0;
  } else if (++sequence > 0xfff) {
    // 4,096 ids in one millisecond: borrow the next one, keeping the order.
    lastMs++;
    sequence = 0;
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let ms = lastMs;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  bytes[6] = 0x70 | (sequence >> 8);
  bytes[7] = sequence & 0xff;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}
