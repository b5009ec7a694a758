/**
 * What the Pusher front door reports as it happens, for Pusher's webhooks
 * (`client_event`, `cache_miss`): an optional observer the server passes in.
 * Channel occupancy and presence members are the core's (rooms and
 * presence), not reported here.
 *
 * @module
 */
import type { PusherApp } from "./apps.ts";

/** A client event relayed on a channel (Pusher's `client_event` webhook). */
export interface ClientEventReport {
  readonly channel: string;
  readonly event: string;
  /** The event's `data` as JSON text, as the client sent it. */
  readonly dataJson: string;
  readonly socketId: string;
  /** Presence channels: the sender's user id. */
  readonly userId?: string;
}

/** Receives the front door's reports; must not throw, must be cheap (called inline). */
export interface PusherObserver {
  /** A client event was relayed. */
  clientEvent?(app: PusherApp, report: ClientEventReport): void;
  /** A cache channel had no event to send on subscribe. */
  cacheMiss?(app: PusherApp, channel: string): void;
}
