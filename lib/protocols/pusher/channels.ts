/**
 * The Pusher channels as the HTTP API sees them ({@linkcode PusherChannels}):
 * events triggered into channels (framed once, as the room frames Pusher
 * connections send as they are), channel state and presence users read from
 * the presence store (every Pusher subscription is tracked there, so with a
 * shared store the answers are cluster-wide), and terminating a signed-in
 * user's connections on every isolate and node (over the bus).
 *
 * @module
 */
import { z } from "zod";
import type { SystemChannel } from "../../bus/types.ts";
import type { RoomManager } from "../../core/rooms.ts";
import type { OccupancyStore } from "../../store/occupancy/types.ts";
import type { PresenceStore } from "../../store/presence/types.ts";
import type { PusherApp } from "./apps.ts";
import type { AppStats } from "./app_stats.ts";
import { appRoomPrefix, channelKind, channelRoom, validChannelName } from "./channel_names.ts";
import { encodeChannelEvent } from "./codec.ts";
import type { ChannelState, PusherChannels, TriggeredEvent } from "./types.ts";

/** The bus room terminations travel on (outside every native room name). */
export const PUSHER_SYSTEM_ROOM = "~pusher";
/** The system envelope kind of terminations. */
export const TERMINATE_KIND = "pusher_terminate";

const Termination = z.strictObject({ app: z.string(), user: z.string() });

/** What {@linkcode createPusherChannels} needs. */
export interface PusherChannelsDeps {
  readonly rooms: RoomManager;
  readonly bus: SystemChannel;
  /** Where subscriptions are tracked; undefined: this isolate's rooms answer. */
  readonly presenceStore: PresenceStore | undefined;
  /**
   * Which rooms are held by some node (a shared store): the channel list is
   * cluster-wide; undefined: the list is this isolate's rooms.
   */
  readonly occupancy?: OccupancyStore | undefined;
  /** An app's connections on this isolate. */
  stats(appId: string): AppStats | undefined;
}

/** {@linkcode PusherChannels}, plus what the server wires at start. */
export interface PusherChannelsService extends PusherChannels {
  /** Starts receiving terminations from other instances. */
  start(): Promise<void>;
}

/** Subscriptions and distinct users of a room, from the presence store. */
async function storedState(
  store: PresenceStore,
  room: string,
  presence: boolean,
): Promise<ChannelState> {
  const entries = await store.list(room);
  const users = new Set<string>();
  let subscriptionCount = 0;
  for (const byUser of entries.values()) {
    for (const [user, entry] of byUser) {
      users.add(user);
      subscriptionCount += entry.connections;
    }
  }
  const state = { occupied: subscriptionCount > 0, subscriptionCount };
  return presence ? { ...state, userCount: users.size } : state;
}

/** Most channels one `GET /apps/{id}/channels` lists. */
export const MAX_LISTED_CHANNELS = 10_000;

/** The app's channels with members on this isolate. */
function localChannels(rooms: RoomManager, appPrefix: string, prefix: string): string[] {
  const out: string[] = [];
  for (const { room } of rooms.activity()) {
    if (!room.startsWith(appPrefix + prefix)) continue;
    out.push(room.slice(appPrefix.length));
    if (out.length >= MAX_LISTED_CHANNELS) break;
  }
  return out;
}

/**
 * The app's channels some node holds, from the occupancy store (its room
 * keys are `["r","<room>"]`; channel names need no JSON escaping).
 */
async function heldChannels(
  store: OccupancyStore,
  appPrefix: string,
  prefix: string,
): Promise<string[]> {
  const keyPrefix = JSON.stringify(["r", appPrefix + prefix]).slice(0, -2);
  const keys = await store.list(keyPrefix, MAX_LISTED_CHANNELS);
  const out: string[] = [];
  for (const key of keys) {
    const held: unknown = JSON.parse(key);
    const room = Array.isArray(held) ? held[1] : undefined;
    if (typeof room === "string") out.push(room.slice(appPrefix.length));
  }
  return out;
}

/**
 * The Pusher channels over the core's rooms, bus and presence store.
 *
 * @example
 * ```ts ignore
 * const channels = createPusherChannels({ rooms, bus, presenceStore, stats });
 * await channels.start();
 * await channels.trigger(app, { name: "greet", data: "hi", channels: ["news"] });
 * ```
 */
export function createPusherChannels(deps: PusherChannelsDeps): PusherChannelsService {
  const { rooms, bus, presenceStore } = deps;
  const terminateHere = (appId: string, userId: string) => {
    for (const conn of [...(deps.stats(appId)?.open ?? [])]) {
      if (conn.signedIn === userId) conn.terminate();
    }
  };
  const localState = (room: string, presence: boolean): ChannelState => {
    let members = 0;
    for (const activity of rooms.activity()) if (activity.room === room) members = activity.members;
    const state = { occupied: members > 0, subscriptionCount: members };
    return presence ? { ...state, userCount: members } : state;
  };
  const state = (app: PusherApp, channel: string): Promise<ChannelState> | ChannelState => {
    const room = channelRoom(app.id, channel);
    const presence = channelKind(channel).presence;
    return presenceStore === undefined
      ? localState(room, presence)
      : storedState(presenceStore, room, presence);
  };
  return {
    async start() {
      rooms.onSystem(TERMINATE_KIND, (envelope) => {
        let value: unknown;
        try {
          value = JSON.parse(envelope.frame);
        } catch {
          return;
        }
        const parsed = Termination.safeParse(value);
        if (parsed.success) terminateHere(parsed.data.app, parsed.data.user);
      });
      await bus.subscribe(PUSHER_SYSTEM_ROOM);
    },
    async trigger(app, event: TriggeredEvent) {
      const dataJson = JSON.stringify(event.data);
      const options = event.socketId === undefined ? {} : { except: event.socketId };
      // A name no client may subscribe to (the API allows longer ones) reaches no one.
      const names = event.channels.filter(validChannelName);
      await Promise.all(names.map((channel) => {
        const frame = encodeChannelEvent(channel, event.name, dataJson, options);
        return rooms.publish(channelRoom(app.id, channel), frame);
      }));
    },
    async channel(app, channel) {
      return await state(app, channel);
    },
    async channels(app, prefix) {
      const appPrefix = appRoomPrefix(app.id);
      const names = deps.occupancy === undefined
        ? localChannels(rooms, appPrefix, prefix ?? "")
        : await heldChannels(deps.occupancy, appPrefix, prefix ?? "");
      const found = new Map<string, ChannelState>();
      const states = await Promise.all(names.map((channel) => state(app, channel)));
      // The holders may name a node that died and is not reaped yet: its state says.
      names.forEach((channel, i) => {
        if (states[i]!.occupied) found.set(channel, states[i]!);
      });
      return found;
    },
    async users(app, channel) {
      const room = channelRoom(app.id, channel);
      if (presenceStore === undefined) return [];
      const entries = await presenceStore.list(room);
      const users = new Set<string>();
      for (const byUser of entries.values()) for (const user of byUser.keys()) users.add(user);
      return [...users];
    },
    terminateUser(app, userId) {
      terminateHere(app.id, userId);
      bus.publish(PUSHER_SYSTEM_ROOM, JSON.stringify({ app: app.id, user: userId }), {
        kind: TERMINATE_KIND,
      });
      return Promise.resolve();
    },
  };
}
