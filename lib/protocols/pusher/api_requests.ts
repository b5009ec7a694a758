/**
 * What the Pusher HTTP API accepts: the bodies of `events`, `batch_events`
 * and `terminate_connections` (zod schemas), and the checks Pusher makes
 * beyond their shape, each with Pusher's status: `400` for a bad channel
 * name, too many channels or batch events, or an over-long event name, and
 * `413` for `data` over the app's `maxEventPayloadKb`. A batch is checked
 * whole before any of it is sent.
 *
 * @module
 */
import { z } from "zod";
import { jsonDeeperThan, utf8Length } from "../../core/json.ts";
import type { PusherApp } from "./apps.ts";
import { channelKind, MAX_CHANNEL_LENGTH, validChannelName } from "./channel_names.ts";
import type { TriggeredEvent } from "./types.ts";

/** Longest user id in a path. */
export const MAX_USER_ID_LENGTH = 200;

/** Whether a channel is a presence channel (`presence-`, `presence-cache-`). */
export function isPresenceChannel(name: string): boolean {
  return channelKind(name).presence;
}

// Names and channels are only typed here: their lengths and count are the app's
// limits, checked by checkEvent with Pusher's messages.
const SocketId = z.string().regex(/^\d{1,20}\.\d{1,20}$/, "must be a socket id like 123.456");

/** `POST /apps/{id}/events`. Unknown fields are ignored, as Pusher does. */
export const EventsBody = z.object({
  name: z.string().min(1, "name is required"),
  data: z.string({ error: "data must be a string" }),
  channel: z.string().optional(),
  channels: z.array(z.string()).optional(),
  socket_id: SocketId.optional(),
  /** Attributes to answer per channel: `subscription_count`, `user_count`. */
  info: z.string().max(200).optional(),
});

/** One event of a batch. */
export const BatchEvent = z.object({
  name: z.string().min(1, "name is required"),
  data: z.string({ error: "data must be a string" }),
  channel: z.string(),
  socket_id: SocketId.optional(),
  info: z.string().max(200).optional(),
});

/** `POST /apps/{id}/batch_events`. */
export const BatchEventsBody = z.object({
  // The count is the app's limit, checked with Pusher's message; this only bounds the parse.
  batch: z.array(z.unknown()).max(1000, "batch is far over any batch size"),
});

/** `POST /apps/{id}/users/{user_id}/terminate_connections`: the SDK sends `{}`. */
export const TerminateBody = z.object({});

/** An attribute an `info` parameter may ask for. */
export type InfoAttribute = "subscription_count" | "user_count";

/** The attributes of an `info` parameter (`"user_count,subscription_count"`); unknown ones are ignored. */
export function parseInfo(info: string | null | undefined): Set<InfoAttribute> {
  const wanted = new Set<InfoAttribute>();
  for (const part of (info ?? "").split(",")) {
    const name = part.trim();
    if (name === "subscription_count" || name === "user_count") wanted.add(name);
  }
  return wanted;
}

/** A request the API refuses: its status (400 or 413) and message. */
export interface ApiRefusal {
  readonly status: 400 | 413;
  readonly message: string;
}

/** What {@linkcode checkEvent} needs of the server's limits. */
export interface EventLimits {
  /** `MAX_PAYLOAD_DEPTH`: a JSON `data` nesting deeper is refused, as on `/ws`. */
  maxPayloadDepth: number;
}

/** An event as validated: what to trigger, and the `info` asked for. */
export interface CheckedEvent {
  readonly event: TriggeredEvent;
  readonly info: Set<InfoAttribute>;
}

function checkChannels(app: PusherApp, channels: string[]): ApiRefusal | undefined {
  if (channels.length === 0) return { status: 400, message: "channels: at least one is required" };
  if (channels.length > app.maxEventChannelsAtOnce) {
    return {
      status: 400,
      message: `channels: ${channels.length} channels, at most ${app.maxEventChannelsAtOnce}`,
    };
  }
  const bad = channels.find((c) => !validChannelName(c));
  if (bad !== undefined) {
    return {
      status: 400,
      message: `Invalid channel name: ${JSON.stringify(bad.slice(0, MAX_CHANNEL_LENGTH))} ` +
        `(1-${MAX_CHANNEL_LENGTH} of A-Z a-z 0-9 _ - = @ , . ;)`,
    };
  }
  if (channels.length > 1 && channels.some((c) => c.startsWith("private-encrypted-"))) {
    return { status: 400, message: "channels: an encrypted channel must be triggered alone" };
  }
  return undefined;
}

/**
 * Checks one event against the app's limits: channel names and count, the
 * name's length and reserved prefixes, the size and nesting of `data`.
 */
export function checkEvent(
  app: PusherApp,
  body: z.output<typeof EventsBody>,
  limits: EventLimits,
): CheckedEvent | ApiRefusal {
  if (body.channel !== undefined && body.channels !== undefined) {
    return { status: 400, message: "give channel or channels, not both" };
  }
  const channels = body.channels ?? (body.channel === undefined ? [] : [body.channel]);
  const refused = checkChannels(app, channels);
  if (refused !== undefined) return refused;
  const { name, data } = body;
  if (name.length > app.maxEventNameLength) {
    return {
      status: 400,
      message: `Event name too long: ${name.length} characters, at most ${app.maxEventNameLength}`,
    };
  }
  if (name.startsWith("pusher:") || name.startsWith("pusher_internal:")) {
    return { status: 400, message: "Event name is reserved: pusher: and pusher_internal:" };
  }
  const maxBytes = Math.floor(app.maxEventPayloadKb * 1024);
  const bytes = utf8Length(data, maxBytes);
  if (bytes > maxBytes) {
    return { status: 413, message: `Payload too large: data is over ${maxBytes} bytes` };
  }
  if (jsonDeeperThan(data, limits.maxPayloadDepth)) {
    return {
      status: 400,
      message: `data nests arrays/objects deeper than ${limits.maxPayloadDepth} levels`,
    };
  }
  const event: TriggeredEvent = {
    name,
    data,
    channels,
    ...(body.socket_id === undefined ? {} : { socketId: body.socket_id }),
  };
  return { event, info: parseInfo(body.info) };
}

/** Checks a whole batch: its size, then each event (the message names its index). */
export function checkBatch(
  app: PusherApp,
  batch: unknown[],
  limits: EventLimits,
): CheckedEvent[] | ApiRefusal {
  if (batch.length > app.maxEventBatchSize) {
    return {
      status: 400,
      message: `Batch too large: ${batch.length} events, at most ${app.maxEventBatchSize}`,
    };
  }
  const checked: CheckedEvent[] = [];
  for (const [i, item] of batch.entries()) {
    const parsed = BatchEvent.safeParse(item);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue?.path.join(".") || "event";
      return { status: 400, message: `batch[${i}].${field}: ${issue?.message ?? "invalid"}` };
    }
    const one = checkEvent(app, parsed.data, limits);
    if ("status" in one) return { status: one.status, message: `batch[${i}]: ${one.message}` };
    checked.push(one);
  }
  return checked;
}

/**
 * Most bytes of a request body for this app: a batch of its largest events,
 * each with `data` at the payload limit JSON-escaped at twice its size (every
 * character a quote or backslash), its channel list and name.
 */
export function bodyLimit(app: PusherApp): number {
  const payload = Math.floor(app.maxEventPayloadKb * 1024) * 2;
  const channels = app.maxEventChannelsAtOnce * (MAX_CHANNEL_LENGTH + 3);
  const event = payload + app.maxEventNameLength * 2 + 1024;
  return Math.max(event + channels, app.maxEventBatchSize * (event + MAX_CHANNEL_LENGTH));
}
