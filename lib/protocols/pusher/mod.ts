/**
 * The Pusher adapter, as the server composes it: the apps (loaded and
 * validated at start-up), their per-isolate figures, the channels the HTTP
 * API drives ({@linkcode createPusherChannels}), and the rules the core's
 * rooms and presence follow for Pusher rooms (cache channels keep their last
 * event; every channel is tracked by presence). The WebSocket front door is
 * `front_door.ts`.
 *
 * @module
 */
import type { SystemChannel } from "../../bus/types.ts";
import type { PusherConfig } from "../../config.ts";
import type { RoomManager } from "../../core/rooms.ts";
import type { OccupancyStore } from "../../store/occupancy/types.ts";
import type { PresenceStore } from "../../store/presence/types.ts";
import { AppStats } from "./app_stats.ts";
import { loadPusherApps, type PusherApps } from "./apps.ts";
import { createPusherChannels, type PusherChannelsService } from "./channels.ts";
import { roomChannel } from "./channel_names.ts";

export { pusherHistoryLimits } from "./channel_names.ts";
export { PUSHER_WS_PATH, PusherFrontDoor } from "./front_door.ts";
export type { PusherChannelsService } from "./channels.ts";
export type { ClientEventReport, PusherObserver } from "./observer.ts";
export { pusherWebhookObserver, pusherWebhooks } from "./webhooks.ts";

/** The Pusher side of the server, when it has apps. */
export interface PusherService {
  readonly apps: PusherApps;
  /** Each app's connections and counters on this isolate. */
  readonly stats: ReadonlyMap<string, AppStats>;
  /** What the HTTP API drives. */
  readonly channels: PusherChannelsService;
}

/** Whether a core room is a Pusher channel: every one is tracked by presence. */
export function isPusherRoom(room: string): boolean {
  return roomChannel(room) !== undefined;
}

/** Loads the apps of the `pusher` section (a bad apps file stops start-up, naming the field). */
export function loadApps(config: PusherConfig): Promise<PusherApps> {
  return loadPusherApps(config);
}

/** What {@linkcode openPusher} wires to. */
export interface PusherDeps {
  readonly rooms: RoomManager;
  readonly bus: SystemChannel;
  readonly presenceStore: PresenceStore | undefined;
  /** Rooms held anywhere (a shared store): the channel list is cluster-wide. */
  readonly occupancy?: OccupancyStore | undefined;
}

/**
 * The Pusher side for `apps`, or undefined without any app (the Pusher
 * endpoints then answer 404).
 */
export async function openPusher(
  apps: PusherApps,
  deps: PusherDeps,
): Promise<PusherService | undefined> {
  if (apps.size === 0) return undefined;
  const stats = new Map<string, AppStats>();
  for (const app of apps.list()) stats.set(app.id, new AppStats());
  const channels = createPusherChannels({ ...deps, stats: (appId) => stats.get(appId) });
  await channels.start();
  return { apps, stats, channels };
}
