/**
 * The Pusher wire format (protocol v7): the zod schemas of what clients
 * send, and every frame the server sends, encoded only here. Channel events
 * are built once per message as room frames the core stores and carries
 * as-is; a frame that must skip one connection (the sender of a client
 * event, the API's `socket_id`) starts with that socket id and a newline,
 * which each member checks with a prefix comparison instead of a parse.
 *
 * @module
 */
import { z } from "zod";
import type { PresenceInfo } from "../../core/auth.ts";
import { jsonDeeperThan, parseJsonRefusingProto } from "../../core/json.ts";
import type { PresenceDelta, PresenceEvent, PresenceSnapshot } from "../../core/presence/mod.ts";
import { roomChannel } from "./channel_names.ts";

const SubscribeData = z.object({
  channel: z.string().min(1),
  auth: z.string().optional(),
  channel_data: z.string().optional(),
});

const UnsubscribeData = z.object({ channel: z.string().min(1) });

const SigninData = z.object({ auth: z.string(), user_data: z.string() });

const Frame = z.object({
  event: z.string().min(1),
  channel: z.string().optional(),
  data: z.unknown().optional(),
});

/** A message from a Pusher client, parsed and narrowed. */
export type PusherClientMessage =
  | { readonly type: "ping" }
  | { readonly type: "pong" }
  | {
    readonly type: "subscribe";
    readonly channel: string;
    readonly auth: string | undefined;
    readonly channelData: string | undefined;
  }
  | { readonly type: "unsubscribe"; readonly channel: string }
  | { readonly type: "signin"; readonly auth: string; readonly userData: string }
  | {
    readonly type: "client";
    readonly event: string;
    readonly channel: string;
    /** The event's `data` as JSON text, relayed as it came. */
    readonly dataJson: string;
  }
  | { readonly type: "other"; readonly event: string };

/** A parsed frame, or why it could not be. */
export type PusherParse =
  | { readonly ok: true; readonly message: PusherClientMessage }
  | { readonly ok: false; readonly error: string };

/** Options for {@linkcode parsePusherFrame}. */
export interface ParseOptions {
  /** `MAX_PAYLOAD_DEPTH`: deeper frames are refused before they are parsed. */
  maxDepth: number;
}

/** `data` of a `pusher:` event: an object, or (some clients) that object as JSON text. */
function dataObject(data: unknown): unknown {
  if (typeof data !== "string") return data;
  try {
    return parseJsonRefusingProto(data);
  } catch {
    return data;
  }
}

function narrow(frame: z.infer<typeof Frame>): PusherParse {
  const { event } = frame;
  const fail = (what: string) => ({ ok: false, error: `${event}: ${what}` }) as const;
  switch (event) {
    case "pusher:ping":
      return { ok: true, message: { type: "ping" } };
    case "pusher:pong":
      return { ok: true, message: { type: "pong" } };
    case "pusher:subscribe": {
      const data = SubscribeData.safeParse(dataObject(frame.data));
      if (!data.success) return fail("data must be {channel, auth?, channel_data?}");
      const { channel, auth, channel_data: channelData } = data.data;
      return { ok: true, message: { type: "subscribe", channel, auth, channelData } };
    }
    case "pusher:unsubscribe": {
      const data = UnsubscribeData.safeParse(dataObject(frame.data));
      if (!data.success) return fail("data must be {channel}");
      return { ok: true, message: { type: "unsubscribe", channel: data.data.channel } };
    }
    case "pusher:signin": {
      const data = SigninData.safeParse(dataObject(frame.data));
      if (!data.success) return fail("data must be {auth, user_data}");
      return {
        ok: true,
        message: { type: "signin", auth: data.data.auth, userData: data.data.user_data },
      };
    }
  }
  if (!event.startsWith("client-")) return { ok: true, message: { type: "other", event } };
  if (frame.channel === undefined) return fail("a client event needs a channel");
  const dataJson = JSON.stringify(frame.data ?? null);
  return { ok: true, message: { type: "client", event, channel: frame.channel, dataJson } };
}

/**
 * Parses one text frame: JSON no deeper than `maxDepth`, without
 * `__proto__` keys, shaped `{event, channel?, data?}`.
 */
export function parsePusherFrame(text: string, options: ParseOptions): PusherParse {
  if (jsonDeeperThan(text, options.maxDepth)) {
    return { ok: false, error: `nests arrays/objects deeper than ${options.maxDepth} levels` };
  }
  let value: unknown;
  try {
    value = parseJsonRefusingProto(text);
  } catch (err) {
    return { ok: false, error: err instanceof SyntaxError ? "not JSON" : String(err) };
  }
  const frame = Frame.safeParse(value);
  if (!frame.success) return { ok: false, error: "expected {event, channel?, data?}" };
  return narrow(frame.data);
}

/** `pusher:connection_established`. */
export function encodeConnectionEstablished(socketId: string, activityTimeoutSec: number): string {
  const data = JSON.stringify({ socket_id: socketId, activity_timeout: activityTimeoutSec });
  return `{"event":"pusher:connection_established","data":${JSON.stringify(data)}}`;
}

/** `pusher:error` (`code` null for a malformed frame). */
export function encodeError(code: number | null, message: string, channel?: string): string {
  return JSON.stringify({
    event: "pusher:error",
    ...(channel === undefined ? {} : { channel }),
    data: { code, message },
  });
}

/** `pusher:ping`, sent by the server to a silent client. */
export const PING_FRAME = '{"event":"pusher:ping","data":{}}';
/** `pusher:pong`, the answer to a client's ping. */
export const PONG_FRAME = '{"event":"pusher:pong","data":{}}';

/** `pusher_internal:subscription_succeeded` of a channel without members. */
export function encodeSubscribed(channel: string): string {
  return `{"event":"pusher_internal:subscription_succeeded","channel":${
    JSON.stringify(channel)
  },"data":"{}"}`;
}

/** `pusher:subscription_error` (`AuthError` with 401 for a bad or missing signature). */
export function encodeSubscriptionError(
  channel: string,
  type: string,
  error: string,
  status: number,
): string {
  return JSON.stringify({
    event: "pusher:subscription_error",
    channel,
    data: { type, error, status },
  });
}

/** `pusher:cache_miss`: a cache channel had no event to send on subscribe. */
export function encodeCacheMiss(channel: string): string {
  return `{"event":"pusher:cache_miss","channel":${JSON.stringify(channel)}}`;
}

/** `pusher:signin_success`. */
export function encodeSigninSuccess(userData: string): string {
  return JSON.stringify({ event: "pusher:signin_success", data: { user_data: userData } });
}

/** Options for {@linkcode encodeChannelEvent}. */
export interface ChannelEventOptions {
  /** Presence channels' client events: the sender's user id. */
  userId?: string;
  /** The socket that must not receive the event. */
  except?: string;
}

/**
 * A channel event as a room frame: `dataJson` is the JSON of `data` (a
 * string for API events, any JSON for client events), written as is.
 */
export function encodeChannelEvent(
  channel: string,
  event: string,
  dataJson: string,
  options: ChannelEventOptions = {},
): string {
  const user = options.userId === undefined ? "" : `,"user_id":${JSON.stringify(options.userId)}`;
  const json = `{"event":${JSON.stringify(event)},"channel":${
    JSON.stringify(channel)
  },"data":${dataJson}${user}}`;
  return options.except === undefined ? json : `${options.except}\n${json}`;
}

const OPEN_BRACE = 123;

/** The last excluding frame seen and its JSON: one slice per message, not per member. */
let lastFrame = "";
let lastJson = "";
let lastExcept = "";

/**
 * What a room frame means for the connection `socketId`: the frame to send,
 * or null when the frame excludes it. One comparison, no parse; the JSON of
 * an excluding frame is cut out once per message (the same string reaches
 * every member, so the cache hits on identity).
 */
export function frameFor(frame: string, socketId: string): string | null {
  if (frame.charCodeAt(0) === OPEN_BRACE) return frame;
  if (frame !== lastFrame) {
    const newline = frame.indexOf("\n");
    lastExcept = frame.slice(0, newline);
    lastJson = frame.slice(newline + 1);
    lastFrame = frame;
  }
  return socketId === lastExcept ? null : lastJson;
}

/** The key a non-object `user_info` is kept under in the core's presence info (an object). */
const WRAPPED = "$pusher_user_info";

/** A member's `user_info` as the core's presence info (always a JSON object). */
export function toPresenceInfo(userInfo: unknown): PresenceInfo | undefined {
  if (userInfo === undefined) return undefined;
  if (typeof userInfo === "object" && userInfo !== null && !Array.isArray(userInfo)) {
    return userInfo as PresenceInfo;
  }
  return { [WRAPPED]: userInfo } as PresenceInfo;
}

function fromPresenceInfo(info: PresenceInfo | undefined): unknown {
  if (info === undefined) return undefined;
  return WRAPPED in info ? info[WRAPPED] : info;
}

/** `pusher_internal:subscription_succeeded` of a presence channel, from its snapshot. */
export function encodePresenceSubscribed(channel: string, snapshot: PresenceSnapshot): string {
  const ids: string[] = [];
  const hash: Record<string, unknown> = {};
  for (const entry of snapshot.entries) {
    ids.push(entry.userId);
    hash[entry.userId] = fromPresenceInfo(entry.info) ?? null;
  }
  const data = JSON.stringify({ presence: { ids, hash, count: snapshot.count } });
  return `{"event":"pusher_internal:subscription_succeeded","channel":${
    JSON.stringify(channel)
  },"data":${JSON.stringify(data)}}`;
}

const deltaFrames = new WeakMap<PresenceDelta, string[]>();

/**
 * `pusher_internal:member_added` and `member_removed` frames of a presence
 * delta, encoded once for every member the same delta goes to.
 */
export function encodeMemberChanges(delta: PresenceDelta): string[] {
  let frames = deltaFrames.get(delta);
  if (frames !== undefined) return frames;
  const found = roomChannel(delta.room);
  frames = [];
  if (found !== undefined) {
    const channel = JSON.stringify(found.channel);
    for (const user of delta.joined) {
      const info = fromPresenceInfo(user.info);
      const data = JSON.stringify({ user_id: user.userId, user_info: info ?? null });
      frames.push(
        `{"event":"pusher_internal:member_added","channel":${channel},"data":${
          JSON.stringify(data)
        }}`,
      );
    }
    for (const userId of delta.left) {
      const data = JSON.stringify({ user_id: userId });
      frames.push(
        `{"event":"pusher_internal:member_removed","channel":${channel},"data":${
          JSON.stringify(data)
        }}`,
      );
    }
  }
  deltaFrames.set(delta, frames);
  return frames;
}

/** Whether a presence event is a snapshot. */
export function isSnapshot(event: PresenceEvent): event is PresenceSnapshot {
  return event.kind === "snapshot";
}
