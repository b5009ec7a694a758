/**
 * Pusher channel names: what a name may be, what kind of channel it names
 * (public, private, presence, private-encrypted, each with a cache variant),
 * and where a channel lives in the core: an app's channels are a namespace
 * of their own, as core rooms whose names no native client can give (`~` is
 * outside the native room alphabet, see lib/protocols/native/protocol.ts).
 *
 * @module
 */

/** Longest channel name Pusher accepts. */
export const MAX_CHANNEL_LENGTH = 164;

const CHANNEL_PATTERN = /^[A-Za-z0-9_\-=@,.;]+$/;

/**
 * The channel a signed-in user's connections hear the API's `sendToUser`
 * events on (`#server-to-user-<id>`): `pusher-js` subscribes to it after
 * `pusher:signin`, and only a connection signed in as that user may.
 */
export const USER_CHANNEL_PREFIX = "#server-to-user-";

/** The prefix of every Pusher room in the core. */
export const PUSHER_ROOM_PREFIX = "~";

/** How a channel is authorised and what it carries. */
export interface ChannelKind {
  /** `private-` (and `private-encrypted-`): a signature over `socket_id:channel`. */
  readonly private: boolean;
  /** `presence-`: a signature over `socket_id:channel:channel_data`, and members. */
  readonly presence: boolean;
  /** `private-encrypted-`: relayed untouched, no client events. */
  readonly encrypted: boolean;
  /** `cache-` variants: the last event is kept for 30 minutes and sent on subscribe. */
  readonly cache: boolean;
  /** `#server-to-user-<id>`: the user id, for a connection signed in as that user only. */
  readonly user?: string;
}

/** Whether `name` is a channel name Pusher accepts. */
export function validChannelName(name: string): boolean {
  const rest = name.startsWith(USER_CHANNEL_PREFIX) ? name.slice(USER_CHANNEL_PREFIX.length) : name;
  return rest.length > 0 && name.length <= MAX_CHANNEL_LENGTH && CHANNEL_PATTERN.test(rest);
}

/** What kind of channel `name` is (the name is assumed valid). */
export function channelKind(name: string): ChannelKind {
  if (name.startsWith(USER_CHANNEL_PREFIX)) {
    const user = name.slice(USER_CHANNEL_PREFIX.length);
    return { private: false, presence: false, encrypted: false, cache: false, user };
  }
  const encrypted = name.startsWith("private-encrypted-");
  const presence = name.startsWith("presence-");
  const isPrivate = encrypted || presence || name.startsWith("private-");
  const rest = encrypted
    ? name.slice("private-encrypted-".length)
    : presence
    ? name.slice("presence-".length)
    : isPrivate
    ? name.slice("private-".length)
    : name;
  return { private: isPrivate, presence, encrypted, cache: rest.startsWith("cache-") };
}

/** Whether clients may send `client-*` events on a channel of this kind. */
export function acceptsClientEvents(kind: ChannelKind): boolean {
  return kind.private && !kind.encrypted;
}

/** The core room of an app's channel. */
export function channelRoom(appId: string, channel: string): string {
  return `${PUSHER_ROOM_PREFIX}${appId}${PUSHER_ROOM_PREFIX}${channel}`;
}

/** The prefix of every core room of an app. */
export function appRoomPrefix(appId: string): string {
  return `${PUSHER_ROOM_PREFIX}${appId}${PUSHER_ROOM_PREFIX}`;
}

/** The app and channel of a Pusher room, or undefined for any other room. */
export function roomChannel(room: string): { appId: string; channel: string } | undefined {
  if (!room.startsWith(PUSHER_ROOM_PREFIX)) return undefined;
  const end = room.indexOf(PUSHER_ROOM_PREFIX, 1);
  if (end < 0) return undefined;
  return { appId: room.slice(1, end), channel: room.slice(end + 1) };
}

/** How long a cache channel keeps its last event (Pusher's 30 minutes). */
export const CACHE_TTL_MS = 30 * 60_000;

/**
 * History limits of a core room that is a Pusher channel: one event for 30
 * minutes for a cache channel, none for the others; undefined for a room
 * that is not a Pusher channel (the native rules apply).
 */
export function pusherHistoryLimits(
  room: string,
): { size: number; ttlMs: number } | null | undefined {
  const found = roomChannel(room);
  if (found === undefined) return undefined;
  return channelKind(found.channel).cache ? { size: 1, ttlMs: CACHE_TTL_MS } : null;
}
