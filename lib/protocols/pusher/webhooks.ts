/**
 * Pusher's webhooks over the shared engine (lib/webhooks/): one Pusher-format
 * sink per configured webhook of each app ({@linkcode pusherWebhookSinks}),
 * the occupancy share that turns the cluster-wide first/last decisions of
 * Pusher rooms into `channel_occupied`/`channel_vacated` and
 * `member_added`/`member_removed` ({@linkcode pusherOccupancy}), and the
 * observer that turns the front door's reports into `client_event` and
 * `cache_miss` ({@linkcode pusherWebhookObserver}). Queued events carry the
 * app's id in `app`, which picks the app's sinks and is never sent.
 *
 * @module
 */
import type { OccupancyEdge, OccupancyProtocol } from "../../webhooks/occupancy.ts";
import type { ProtocolWebhooks } from "../../webhooks/from_config.ts";
import { pusherSink, type WebhookSink } from "../../webhooks/sinks.ts";
import type { PusherApp, PusherApps } from "./apps.ts";
import { channelKind, roomChannel } from "./channel_names.ts";
import type { PusherObserver } from "./observer.ts";

/** What the engine is given: a Pusher event, and the app it belongs to. */
type PusherEvent = { name: string; app: string } & Record<string, unknown>;

/** Whether any webhook of `app` takes events named `name`. */
function appWants(app: PusherApp | undefined, name: string): boolean {
  return app?.webhooks.some((hook) => (hook.events as readonly string[]).includes(name)) ?? false;
}

/**
 * One sink per webhook of every app: Pusher's body and signature (the app's
 * key and secret), the webhook's `events` and `headers`, and only that app's
 * events.
 *
 * @example
 * ```ts ignore
 * const sinks = [...nativeSinks(config.webhooks), ...pusherWebhookSinks(apps)];
 * ```
 */
export function pusherWebhookSinks(apps: PusherApps): WebhookSink[] {
  return apps.list().flatMap((app) =>
    app.webhooks.map((hook) =>
      pusherSink({
        url: hook.url,
        key: app.key,
        secret: app.secret,
        events: hook.events,
        ...(hook.headers === undefined ? {} : { headers: hook.headers }),
        ownEvent: (event) => event["app"] === app.id,
      })
    )
  );
}

const ROOM_EVENTS = ["channel_occupied", "channel_vacated"] as const;
const MEMBER_EVENTS = ["member_added", "member_removed"] as const;

/**
 * The apps' webhooks as the engine takes them: their sinks and, when a
 * webhook takes an occupancy or member event, Pusher's occupancy share;
 * undefined when no app has a webhook.
 */
export function pusherWebhooks(
  apps: PusherApps,
  options: PusherOccupancyOptions = {},
): ProtocolWebhooks | undefined {
  if (apps.size === 0) return undefined;
  const sinks = pusherWebhookSinks(apps);
  const names = [...ROOM_EVENTS, ...MEMBER_EVENTS];
  const occupies = options.everyRoom === true ||
    apps.list().some((app) => names.some((name) => appWants(app, name)));
  if (sinks.length === 0 && !occupies) return undefined;
  return { sinks, occupancy: occupies ? pusherOccupancy(apps, options) : undefined };
}

/** Options for {@linkcode pusherOccupancy}. */
export interface PusherOccupancyOptions {
  /**
   * Hold every Pusher room in the occupancy store, wanted by a webhook or
   * not: the cluster-wide channel list of the HTTP API reads them there.
   * @default false
   */
  everyRoom?: boolean;
}

/**
 * Pusher's share of the occupancy events: its rooms (`~app~channel`) are
 * followed when their app has a webhook taking the event, members only on
 * presence channels, and each first/last anywhere becomes Pusher's event.
 *
 * @example
 * ```ts ignore
 * new OccupancyWebhooks({ store, engine, bus, presenceFor, protocols: [pusherOccupancy(apps)], ttlMs });
 * ```
 */
export function pusherOccupancy(
  apps: PusherApps,
  options: PusherOccupancyOptions = {},
): OccupancyProtocol {
  const wants = (room: string, names: readonly string[]) => {
    const found = roomChannel(room);
    if (found === undefined) return undefined;
    const app = apps.byId(found.appId);
    return names.some((name) => appWants(app, name)) ? found : undefined;
  };
  return {
    owns: (room) => roomChannel(room) !== undefined,
    tracksRoom: (room) =>
      options.everyRoom === true
        ? roomChannel(room) !== undefined
        : wants(room, ROOM_EVENTS) !== undefined,
    tracksMembers(room) {
      const found = wants(room, MEMBER_EVENTS);
      return found !== undefined && channelKind(found.channel).presence;
    },
    event: (edge) => occupancyEvent(apps, edge),
  };
}

/** The Pusher event of an occupancy edge, when its app wants it. */
function occupancyEvent(apps: PusherApps, edge: OccupancyEdge): PusherEvent | undefined {
  const found = roomChannel(edge.room);
  if (found === undefined) return undefined;
  const { appId: app, channel } = found;
  const name = edge.kind === "room"
    ? (edge.first ? "channel_occupied" : "channel_vacated")
    : (edge.first ? "member_added" : "member_removed");
  if (!appWants(apps.byId(app), name)) return undefined;
  return edge.kind === "room"
    ? { name, app, channel }
    : { name, app, channel, user_id: edge.userId };
}

/**
 * The front door's reports as Pusher events: `client_event` (with `data` as
 * the text the client sent: a string as is, anything else as its JSON) and
 * `cache_miss`, for the apps whose webhooks take them; `next` (the
 * server's own observer, if any) is told too.
 *
 * @example
 * ```ts ignore
 * const observer = pusherWebhookObserver((event) => engine.emit(event), options.pusherObserver);
 * ```
 */
export function pusherWebhookObserver(
  emit: (event: PusherEvent) => void,
  next: PusherObserver = {},
): PusherObserver {
  return {
    clientEvent(app, report) {
      next.clientEvent?.(app, report);
      if (!appWants(app, "client_event")) return;
      emit({
        name: "client_event",
        app: app.id,
        channel: report.channel,
        event: report.event,
        data: dataText(report.dataJson),
        socket_id: report.socketId,
        ...(report.userId === undefined ? {} : { user_id: report.userId }),
      });
    },
    cacheMiss(app, channel) {
      next.cacheMiss?.(app, channel);
      if (appWants(app, "cache_miss")) emit({ name: "cache_miss", app: app.id, channel });
    },
  };
}

/** A client event's `data` as Pusher's webhooks carry it: text. */
function dataText(dataJson: string): string {
  try {
    const value: unknown = JSON.parse(dataJson);
    return typeof value === "string" ? value : dataJson;
  } catch {
    return dataJson;
  }
}
