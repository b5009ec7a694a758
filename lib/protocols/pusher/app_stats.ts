/**
 * One Pusher app's connections and figures on this isolate: the open
 * connections (for the app's quota and the API's terminate), and counters
 * bumped in place and read by `/metrics` at scrape time.
 *
 * @module
 */
import type { PusherConnection } from "./connection.ts";

/** One app's connections and counters. */
export class AppStats {
  /** Open connections. */
  readonly open: Set<PusherConnection> = new Set();
  /** Frames received from the app's clients. */
  messagesIn = 0;
  /** Frames sent to the app's clients. */
  messagesOut = 0;
}
