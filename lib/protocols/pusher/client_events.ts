/**
 * A Pusher connection's `client-*` events: only on subscribed private and
 * presence channels (never encrypted ones), only when the app enables them,
 * within the app's name and size limits and `maxClientEventsPerSecond`
 * (else `pusher:error` 4301 and the event is dropped); relayed to the
 * channel's other subscribers, never echoed to the sender, with `user_id`
 * on presence channels.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import { utf8ByteLength } from "../../core/json.ts";
import type { CoreSession } from "../../core/session.ts";
import type { PusherApp } from "./apps.ts";
import { acceptsClientEvents } from "./channel_names.ts";
import { encodeChannelEvent, encodeError } from "./codec.ts";
import { PusherCode } from "./codes.ts";
import type { PusherObserver } from "./observer.ts";
import type { Subscriptions } from "./subscriptions.ts";

/** What {@linkcode ClientEvents} works with. */
export interface ClientEventsDeps {
  readonly core: CoreSession;
  readonly app: PusherApp;
  readonly socketId: string;
  readonly clock: Clock;
  readonly subscriptions: Subscriptions;
  /** Told of each relayed event (Pusher's `client_event` webhook). */
  readonly observer?: PusherObserver;
  /** Sends a frame to the client. */
  send(frame: string): void;
}

const WINDOW_MS = 1000;

/** One connection's client events and their per-second budget. */
export class ClientEvents {
  readonly #deps: ClientEventsDeps;
  #windowStart = -Infinity;
  #sent = 0;

  /** @param deps the session, the app, and the connection's channels */
  constructor(deps: ClientEventsDeps) {
    this.#deps = deps;
  }

  /** Relays a client event, or tells the client why not. */
  send(event: string, channel: string, dataJson: string): void {
    const { app, core, socketId, subscriptions } = this.#deps;
    const refuse = (message: string) =>
      this.#deps.send(encodeError(PusherCode.ClientEventRejected, message, channel));
    const sub = subscriptions.ready(channel);
    if (sub === undefined) return refuse("subscribe to the channel before sending client events");
    if (!acceptsClientEvents(sub.kind)) {
      return refuse("client events are only allowed on private and presence channels");
    }
    if (!app.enableClientMessages) return refuse("the app does not have client messaging enabled");
    if (event.length > app.maxEventNameLength) {
      return refuse(`the event name is over ${app.maxEventNameLength} characters`);
    }
    if (utf8ByteLength(dataJson) > app.maxEventPayloadKb * 1024) {
      return refuse(`the event data is over ${app.maxEventPayloadKb} KB`);
    }
    if (!this.#take()) return refuse("the rate limit for sending client events was exceeded");
    const frame = encodeChannelEvent(channel, event, dataJson, {
      ...(sub.userId === undefined ? {} : { userId: sub.userId }),
      except: socketId,
    });
    core.publish(sub.room, frame, undefined, (outcome) => {
      if (!outcome.ok) return refuse(outcome.error.message);
      this.#deps.observer?.clientEvent?.(app, {
        channel,
        event,
        dataJson,
        socketId,
        ...(sub.userId === undefined ? {} : { userId: sub.userId }),
      });
    });
  }

  /** Takes one event of this second's budget. */
  #take(): boolean {
    const now = this.#deps.clock.now();
    if (now - this.#windowStart >= WINDOW_MS) {
      this.#windowStart = now;
      this.#sent = 0;
    }
    return ++this.#sent <= this.#deps.app.maxClientEventsPerSecond;
  }
}
