/**
 * What the Pusher HTTP API (lib/protocols/pusher/api*.ts) asks of the Pusher
 * channels (the WebSocket side, which owns how a channel maps onto a core
 * room and how an event is framed). The answers are cluster-wide wherever
 * the store is shared (Redis, KV), and this isolate's with the memory store.
 *
 * @module
 */
import type { PusherApp } from "./apps.ts";

/** One event triggered through the API (`POST /apps/{id}/events`, one entry of `batch_events`). */
export interface TriggeredEvent {
  /** The event name (checked against `maxEventNameLength` by the API). */
  name: string;
  /** The event's `data`, a string as Pusher sends it (checked against `maxEventPayloadKb`). */
  data: string;
  /** Channels to send it to (at most `maxEventChannelsAtOnce`). */
  channels: string[];
  /** The connection that must not receive it (Pusher's `socket_id` exclusion). */
  socketId?: string;
}

/** A channel's state, for `GET /apps/{id}/channels/{name}` and `info=` answers. */
export interface ChannelState {
  /** Whether anyone anywhere is subscribed. */
  occupied: boolean;
  /** Subscriptions (connections) anywhere. */
  subscriptionCount: number;
  /** Presence channels: distinct users anywhere. */
  userCount?: number;
}

/** The Pusher channels as the HTTP API sees them. */
export interface PusherChannels {
  /**
   * Sends an event to every subscriber of each channel, except `socketId`.
   *
   * @throws {StoreUnavailableError} when a cache channel's store is down
   */
  trigger(app: PusherApp, event: TriggeredEvent): Promise<void>;
  /** One channel's state. */
  channel(app: PusherApp, channel: string): Promise<ChannelState>;
  /** Occupied channels whose name starts with `prefix` (all when undefined). */
  channels(app: PusherApp, prefix: string | undefined): Promise<Map<string, ChannelState>>;
  /** Presence channels: the ids of the users subscribed anywhere. */
  users(app: PusherApp, channel: string): Promise<string[]>;
  /** Closes every connection signed in as `userId`, on every isolate and node. */
  terminateUser(app: PusherApp, userId: string): Promise<void>;
}
