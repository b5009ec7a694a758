/**
 * The Pusher protocol's session loop (`/app/{key}`): reads a socket's
 * frames, asks the core session for each operation (join, leave, publish)
 * and answers in Pusher frames, all encoded by the codec. It also carries
 * what the core tells it unasked ({@linkcode SessionPort}): room frames
 * (sent as they are, unless they exclude this socket), presence snapshots
 * and deltas (`subscription_succeeded`, `member_added`, `member_removed`)
 * and closes, translated to Pusher's codes.
 *
 * @module
 */
import { CloseCode } from "../../codes.ts";
import type { Principal } from "../../core/auth.ts";
import type { PresenceEvent } from "../../core/presence/mod.ts";
import type { Revocations } from "../../core/revocations.ts";
import type { CoreSession } from "../../core/session.ts";
import type { CoreContext, SessionPort } from "../../core/types.ts";
import { socketBacklog, type WebSocketLike } from "../../edge/types.ts";
import type { ActivityWatch, Watched } from "./activity.ts";
import type { PusherApp } from "./apps.ts";
import { authorizeSignin } from "./authorize.ts";
import { ClientEvents } from "./client_events.ts";
import { pusherCloseCode, PusherCode } from "./codes.ts";
import {
  encodeConnectionEstablished,
  encodeError,
  encodeMemberChanges,
  encodeSigninSuccess,
  frameFor,
  parsePusherFrame,
  PING_FRAME,
  PONG_FRAME,
  type PusherClientMessage,
} from "./codec.ts";
import { roomChannel } from "./channel_names.ts";
import type { AppStats } from "./app_stats.ts";
import type { PusherObserver } from "./observer.ts";
import { Subscriptions } from "./subscriptions.ts";

/** What the Pusher front door's sessions need besides the core's services. */
export interface PusherContext extends CoreContext {
  /** Sends pings to silent clients and closes them 4201. */
  readonly activity: ActivityWatch;
  /** Signed-in users are checked against them. */
  readonly revocations: Pick<Revocations, "revokes">;
  /** Told of client events and cache misses (Pusher's webhooks). */
  readonly observer?: PusherObserver;
}

/** Longest close reason a WebSocket close frame carries, in bytes. */
const MAX_REASON = 120;

/** One Pusher connection: the edge of one {@linkcode CoreSession}. */
export class PusherConnection implements SessionPort, Watched {
  /** Pusher's `\d+\.\d+` id, told to the client and signed by the app's auth endpoint. */
  readonly socketId: string;
  readonly app: PusherApp;
  readonly #core: CoreSession;
  readonly #ws: WebSocketLike;
  readonly #ctx: PusherContext;
  readonly #stats: AppStats;
  readonly #subscriptions: Subscriptions;
  readonly #clientEvents: ClientEvents;
  /** The user `pusher:signin` proved, if any. */
  #signedIn: string | undefined;
  #lastSeen: number;
  #released = false;

  /**
   * @param core the session this connection carries
   * @param ws the upgraded socket (not yet open)
   * @param ctx shared services
   * @param app the app whose key the client connected with
   * @param socketId the connection's Pusher socket id
   * @param stats the app's connections and counters on this isolate
   */
  constructor(
    core: CoreSession,
    ws: WebSocketLike,
    ctx: PusherContext,
    app: PusherApp,
    socketId: string,
    stats: AppStats,
  ) {
    this.#core = core;
    this.#ws = ws;
    this.#ctx = ctx;
    this.app = app;
    this.socketId = socketId;
    this.#stats = stats;
    this.#lastSeen = ctx.clock.now();
    stats.open.add(this);
    const send = (frame: string) => this.#send(frame);
    this.#subscriptions = new Subscriptions({
      core,
      ctx,
      app,
      socketId,
      send,
      signedIn: () => this.#signedIn,
    });
    this.#clientEvents = new ClientEvents({
      core,
      app,
      socketId,
      clock: ctx.clock,
      subscriptions: this.#subscriptions,
      send,
      ...(ctx.observer === undefined ? {} : { observer: ctx.observer }),
    });
    ws.onopen = () => this.#open();
    ws.onmessage = (event) => this.#receive(event.data);
    ws.onclose = (event) => this.#closedBy(event.code, event.reason, "client");
    ws.onerror = () => this.#closedBy(CloseCode.InternalError, "socket error", "error");
    ws.onoversize = () => core.tooBig(undefined);
  }

  /** The user `pusher:signin` proved, if any. */
  get signedIn(): string | undefined {
    return this.#signedIn;
  }

  /** When the client last sent anything. */
  get lastSeen(): number {
    return this.#lastSeen;
  }

  /** Bytes queued in the socket, not yet written to the network. */
  get bufferedAmount(): number {
    return socketBacklog(this.#ws, this.#core.ended);
  }

  /** True once the socket is fully closed. */
  get closed(): boolean {
    return this.#ws.readyState === WebSocket.CLOSED;
  }

  /** A room frame: sent as is, unless it excludes this socket. */
  deliver(frame: string): void {
    const out = frameFor(frame, this.socketId);
    if (out !== null) this.#send(out);
  }

  /** A presence event of one of the channels. */
  presence(event: PresenceEvent): void {
    const found = roomChannel(event.room);
    if (found === undefined) return;
    if (event.kind === "snapshot") {
      this.#subscriptions.snapshot(found.channel, event);
      return;
    }
    if (!this.#subscriptions.showsMembers(found.channel)) return;
    for (const frame of encodeMemberChanges(event)) this.#send(frame);
  }

  /** Pusher connections do not expire. */
  expiring(): void {}

  /** A channel taken away: the client hears nothing (Pusher has no such frame). */
  revoked(room: string): void {
    const found = roomChannel(room);
    if (found !== undefined) this.#subscriptions.forget(found.channel);
  }

  /** Nothing is held back. */
  flush(): void {}

  /** Tells the client why (`pusher:error`), then closes with the matching Pusher code. */
  close(code: number, reason: string): void {
    const pusherCode = pusherCloseCode(code);
    this.#send(encodeError(pusherCode, reason));
    this.#release();
    try {
      this.#ws.close(pusherCode, reason.slice(0, MAX_REASON));
    } catch {
      // already closing
    }
  }

  /** Closes the connection for the API's `terminate_connections` (4009). */
  terminate(): void {
    this.#core.close(CloseCode.Forbidden, "terminated by the app");
  }

  /** Sends `pusher:ping` to a silent client ({@linkcode ActivityWatch}). */
  ping(): void {
    this.#send(PING_FRAME);
  }

  /** Closes a client that answered no ping with 4201. */
  timedOut(): void {
    this.#core.close(PusherCode.PongNotReceived, "pong not received");
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#ctx.activity.delete(this);
    this.#stats.open.delete(this);
  }

  #closedBy(code: number, reason: string, by: "client" | "error"): void {
    this.#release();
    this.#core.end(code, reason, by);
  }

  #open(): void {
    if (this.#core.ended) return;
    this.#lastSeen = this.#ctx.clock.now();
    this.#send(encodeConnectionEstablished(this.socketId, this.#ctx.activity.timeoutSec));
    this.#ctx.activity.add(this);
    this.#core.start();
  }

  #send(frame: string): void {
    if (this.#core.ended || this.#ws.readyState !== WebSocket.OPEN) return;
    try {
      this.#ws.send(frame);
    } catch {
      return; // the socket is closing; its close event ends the session
    }
    this.#stats.messagesOut++;
    this.#core.sent(frame.length, 1);
  }

  #receive(data: unknown): void {
    const core = this.#core;
    if (core.ended) return;
    this.#lastSeen = this.#ctx.clock.now();
    this.#stats.messagesIn++;
    const retryAfterMs = core.admit(data);
    if (retryAfterMs < 0) return;
    if (retryAfterMs > 0) {
      const error = core.rateLimited(retryAfterMs);
      if (error !== null) this.#send(encodeError(PusherCode.ClientEventRejected, error.message));
      return;
    }
    if (typeof data !== "string") {
      this.#ctx.counters.badRequests++;
      return this.#send(encodeError(null, "binary frames are not supported; send JSON text"));
    }
    const parsed = parsePusherFrame(data, { maxDepth: this.#ctx.limits.maxPayloadDepth });
    if (!parsed.ok) {
      this.#ctx.counters.badRequests++;
      return this.#send(encodeError(null, parsed.error));
    }
    this.#handle(parsed.message);
  }

  #handle(message: PusherClientMessage): void {
    switch (message.type) {
      case "ping":
        return this.#send(PONG_FRAME);
      case "pong":
        return;
      case "subscribe":
        return this.#subscriptions.subscribe(message.channel, message.auth, message.channelData);
      case "unsubscribe":
        return this.#subscriptions.unsubscribe(message.channel);
      case "signin":
        void this.#signin(message.auth, message.userData);
        return;
      case "client":
        return this.#clientEvents.send(message.event, message.channel, message.dataJson);
      case "other":
        return; // Pusher ignores events it does not know
    }
  }

  async #signin(auth: string, userData: string): Promise<void> {
    const signin = await authorizeSignin(this.app, this.socketId, auth, userData);
    if (this.#core.ended) return;
    if (!signin.ok) return this.#core.close(CloseCode.Forbidden, signin.error);
    const principal: Principal = {
      userId: signin.userId,
      expiresAt: null,
      rooms: [],
      roomsReadonly: [],
      roles: [],
    };
    if (this.#ctx.revocations.revokes(principal)) {
      return this.#core.close(CloseCode.Forbidden, "revoked");
    }
    this.#signedIn = signin.userId;
    this.#core.adopt(principal);
    this.#send(encodeSigninSuccess(userData));
  }
}
