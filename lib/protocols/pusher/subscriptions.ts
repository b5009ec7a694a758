/**
 * One Pusher connection's channels: `pusher:subscribe` checked (name,
 * signature, presence member and limits), joined in the core with the
 * access the signature granted and the member presence shows, answered with
 * `subscription_succeeded` (a presence channel's once its member list
 * arrives) or `subscription_error`, and a cache channel's last event (or
 * `pusher:cache_miss`) after that.
 *
 * @module
 */
import { ErrorCode } from "../../codes.ts";
import type { PresenceSnapshot } from "../../core/presence/mod.ts";
import type { CoreSession } from "../../core/session.ts";
import type { CoreContext, SessionError } from "../../core/types.ts";
import type { PusherApp } from "./apps.ts";
import { authorizeSubscription, type SubscriptionRefusal } from "./authorize.ts";
import { type ChannelKind, channelKind, channelRoom, validChannelName } from "./channel_names.ts";
import {
  encodeCacheMiss,
  encodeError,
  encodePresenceSubscribed,
  encodeSubscribed,
  encodeSubscriptionError,
  frameFor,
} from "./codec.ts";
import { PusherCode } from "./codes.ts";
import type { PusherObserver } from "./observer.ts";

/** One channel of the connection. */
export interface Subscription {
  readonly kind: ChannelKind;
  /** The core room. */
  readonly room: string;
  /** `joining` until the core joined; `members` while a presence channel waits for its list. */
  state: "joining" | "members" | "ready";
  /** Presence channels: the member's user id, from `channel_data`. */
  userId?: string;
}

/** What {@linkcode Subscriptions} works with. */
export interface SubscriptionsDeps {
  readonly core: CoreSession;
  readonly ctx: Pick<CoreContext, "history" | "presence" | "counters"> & {
    readonly observer?: PusherObserver;
  };
  readonly app: PusherApp;
  readonly socketId: string;
  /** The user `pusher:signin` proved, if any. */
  signedIn(): string | undefined;
  /** Sends a frame to the client. */
  send(frame: string): void;
}

function refusalOf(error: SessionError): SubscriptionRefusal {
  switch (error.code) {
    case ErrorCode.Forbidden:
      return { type: "AuthError", error: error.message, status: 403 };
    case ErrorCode.TooManyRooms:
      return { type: "LimitReached", error: error.message, status: 429 };
    default:
      return { type: "ServerError", error: error.message, status: 503 };
  }
}

/** The channels of one connection. */
export class Subscriptions {
  readonly #deps: SubscriptionsDeps;
  readonly #subs = new Map<string, Subscription>();

  /** @param deps the session, services, app and the way out */
  constructor(deps: SubscriptionsDeps) {
    this.#deps = deps;
  }

  /** The channel, once subscribed. */
  ready(channel: string): Subscription | undefined {
    const sub = this.#subs.get(channel);
    return sub?.state === "ready" ? sub : undefined;
  }

  /** Whether member changes of `channel` go to the client (a subscribed presence channel). */
  showsMembers(channel: string): boolean {
    const sub = this.#subs.get(channel);
    return sub !== undefined && sub.state === "ready" && sub.kind.presence;
  }

  /** `pusher:subscribe`. */
  subscribe(channel: string, auth: string | undefined, channelData: string | undefined): void {
    if (!validChannelName(channel)) {
      return this.#refuse(channel, {
        type: "InvalidChannel",
        error: "a channel name is 1-164 of A-Z a-z 0-9 _ - = @ , . ;",
        status: 400,
      });
    }
    const held = this.#subs.get(channel);
    if (held !== undefined) {
      if (held.state === "ready" && !held.kind.presence) this.#deps.send(encodeSubscribed(channel));
      return;
    }
    const kind = channelKind(channel);
    const sub: Subscription = {
      kind,
      room: channelRoom(this.#deps.app.id, channel),
      state: "joining",
    };
    this.#subs.set(channel, sub);
    void this.#authorize(channel, sub, auth, channelData);
  }

  async #authorize(
    channel: string,
    sub: Subscription,
    auth: string | undefined,
    channelData: string | undefined,
  ): Promise<void> {
    const { core, ctx, app, socketId } = this.#deps;
    const granted = await authorizeSubscription(app, {
      socketId,
      channel,
      kind: sub.kind,
      auth,
      channelData,
      signedIn: this.#deps.signedIn(),
    });
    if (core.ended || this.#subs.get(channel) !== sub) return;
    if (!granted.ok) return this.#refuse(channel, granted.refusal);
    const member = granted.member;
    if (
      member !== undefined &&
      (ctx.presence?.count(sub.room) ?? 0) >= app.maxPresenceMembersPerChannel
    ) {
      return this.#refuse(channel, {
        type: "LimitReached",
        error: `the channel has the app's maximum of ${app.maxPresenceMembersPerChannel} members`,
        status: 403,
      });
    }
    if (member !== undefined) sub.userId = member.userId;
    // Every channel is tracked by presence, so that its occupancy is known
    // cluster-wide: a presence channel as its member, any other as this socket.
    const as = member === undefined
      ? { userId: socketId }
      : member.info === undefined
      ? { userId: member.userId }
      : { userId: member.userId, info: member.info };
    core.join(sub.room, undefined, (outcome) => {
      if (!outcome.ok) return this.#refuse(channel, refusalOf(outcome.error));
      this.#joined(channel, sub);
    }, { access: "publish", as });
  }

  #joined(channel: string, sub: Subscription): void {
    if (this.#subs.get(channel) !== sub) {
      // Unsubscribed while joining.
      this.#deps.core.leave(sub.room, () => {});
      return;
    }
    if (sub.kind.presence) {
      sub.state = "members"; // the member list follows (snapshot)
      return;
    }
    sub.state = "ready";
    this.#deps.send(encodeSubscribed(channel));
    if (sub.kind.cache) void this.#sendCached(channel, sub);
  }

  /** A presence channel's member list: the subscription succeeded. */
  snapshot(channel: string, snapshot: PresenceSnapshot): void {
    const sub = this.#subs.get(channel);
    if (sub === undefined || sub.state !== "members") return;
    sub.state = "ready";
    this.#deps.send(encodePresenceSubscribed(channel, snapshot));
    if (sub.kind.cache) void this.#sendCached(channel, sub);
  }

  /** `pusher:unsubscribe`. */
  unsubscribe(channel: string): void {
    const sub = this.#subs.get(channel);
    if (sub === undefined) return;
    this.#subs.delete(channel);
    if (sub.state !== "joining") this.#deps.core.leave(sub.room, () => {});
  }

  /** The core took a channel away. */
  forget(channel: string): void {
    this.#subs.delete(channel);
  }

  #refuse(channel: string, refusal: SubscriptionRefusal): void {
    this.#subs.delete(channel);
    this.#deps.send(encodeSubscriptionError(channel, refusal.type, refusal.error, refusal.status));
  }

  /** A cache channel's last event, or `pusher:cache_miss`. */
  async #sendCached(channel: string, sub: Subscription): Promise<void> {
    const { ctx, core } = this.#deps;
    let frame: string | undefined;
    try {
      const page = await ctx.history.page(sub.room, { limit: 1 });
      frame = page.entries.at(-1)?.frame;
    } catch {
      if (this.#subs.get(channel) !== sub || core.ended) return;
      ctx.counters.unavailable++;
      this.#deps.send(
        encodeError(PusherCode.ServerError, "the cache channel's store is unavailable", channel),
      );
      return;
    }
    if (this.#subs.get(channel) !== sub || core.ended) return;
    if (frame !== undefined) return this.#deps.send(frameFor(frame, "") ?? frame);
    this.#deps.send(encodeCacheMiss(channel));
    ctx.observer?.cacheMiss?.(this.#deps.app, channel);
  }
}
