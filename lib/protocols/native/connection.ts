/**
 * The native protocol's session loop (`/ws`): reads a socket's frames,
 * parses them, asks the core session for each operation and answers in
 * native frames, all encoded by the codec (`lib/protocols/native/protocol.ts`). It also
 * carries what the core tells it unasked ({@linkcode SessionPort}), and
 * coalesces writes for `?batch=1` sessions.
 *
 * @module
 */
import { CloseCode, ErrorCode } from "../../codes.ts";
import type { CoreSession } from "../../core/session.ts";
import type { CoreContext, Outcome, SessionError, SessionPort } from "../../core/types.ts";
import { socketBacklog, type WebSocketLike } from "../../edge/types.ts";
import type { PresenceEvent } from "../../core/presence/mod.ts";
import {
  type ClientMessage,
  encodeAck,
  encodeError,
  encodeExpiring,
  encodeHistory,
  encodeJoined,
  encodeLeft,
  encodePong,
  encodePresence,
  encodeRefreshed,
  encodeRoomMessage,
  encodeRpcResult,
  encodeWelcome,
  type JsonValue,
  parseClientFrame,
} from "./protocol.ts";
import type { Flushable, PendingFrames, WriteBatcher } from "../../core/write_batcher.ts";
import { PublishLine } from "../../core/publish_hook.ts";
import type { StreamPosition } from "../../store/history/types.ts";

/** A batch is written at once when it reaches this size, whatever the turn. */
export const MAX_BATCH_BYTES = 64 * 1024;

/** What the native protocol needs besides the core's services. */
export interface NativeContext extends CoreContext {
  /** Coalesces writes of `?batch=1` sessions. */
  readonly batcher: WriteBatcher;
}

/** One native-protocol connection: the edge of one {@linkcode CoreSession}. */
export class NativeConnection implements SessionPort, Flushable {
  readonly #core: CoreSession;
  readonly #ws: WebSocketLike;
  readonly #ctx: NativeContext;
  /** Opt-in write coalescing (`?batch=1`). */
  readonly #batching: boolean;
  /** What this turn holds for a batching session: shared with members sent the same. */
  #batch: PendingFrames | null = null;
  /** Keeps this publisher's order while the publish hook is asked. */
  readonly #line: PublishLine;

  /**
   * @param core the session this connection carries
   * @param ws the upgraded socket (not yet open)
   * @param ctx shared services
   */
  constructor(core: CoreSession, ws: WebSocketLike, ctx: NativeContext) {
    this.#core = core;
    this.#ws = ws;
    this.#ctx = ctx;
    this.#batching = core.info.batch;
    this.#line = new PublishLine(ctx.backend, core);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => this.#open();
    ws.onmessage = (event) => this.#receive(event.data);
    ws.onclose = (event) => this.#closedBy(event.code, event.reason, "client");
    ws.onerror = () => this.#closedBy(CloseCode.InternalError, "socket error", "error");
    // The `ws` engine refuses a message over the limit as a whole, before it arrives.
    ws.onoversize = () => core.tooBig(undefined);
  }

  /** Bytes queued in the socket, not yet written to the network. */
  get bufferedAmount(): number {
    return socketBacklog(this.#ws, this.#core.ended);
  }

  /** True once the socket is fully closed. */
  get closed(): boolean {
    return this.#ws.readyState === WebSocket.CLOSED;
  }

  /** A room message: already a native frame, the same string for every member. */
  deliver(frame: string): void {
    this.#send(frame);
  }

  /** A presence event, encoded once for every member it goes to. */
  presence(event: PresenceEvent): void {
    this.#send(encodePresence(event));
  }

  /** Warns that the token expires at `expiresAt`. */
  expiring(expiresAt: number): void {
    this.#send(encodeExpiring(expiresAt));
  }

  /** Tells the client a refresh took `room` away. */
  revoked(room: string): void {
    this.#send(encodeLeft(room, undefined, "revoked"));
  }

  /** Flushes what is held, then closes the socket. */
  close(code: number, reason: string): void {
    this.flush();
    try {
      this.#ws.close(code, reason);
    } catch {
      // already closing
    }
  }

  /** Writes the held frames as one newline-separated frame (batching sessions). */
  flush(): void {
    const held = this.#batch;
    this.#batch = null;
    this.#ctx.batcher.cancel(this);
    if (held === null || this.#core.ended) return;
    this.#write(held.text, held.count);
  }

  #closedBy(code: number, reason: string, by: "client" | "error"): void {
    this.#batch = null;
    this.#ctx.batcher.cancel(this);
    this.#core.end(code, reason, by);
  }

  #open(): void {
    const core = this.#core;
    if (core.ended) return;
    const expiresAt = core.principal.expiresAt;
    this.#send(encodeWelcome(core.id, core.userId, expiresAt, this.#ctx.instanceId));
    core.start();
  }

  /** Sends a frame unless the session ended; batching sessions hold it until the turn ends. */
  #send(frame: string): void {
    if (this.#core.ended) return;
    if (!this.#batching) return this.#write(frame, 1);
    const held = (this.#batch ?? this.#ctx.batcher.begin(this)).then(frame);
    this.#batch = held;
    // A huge fan-out within one turn must not pile up unbounded in the batch.
    if (held.length >= MAX_BATCH_BYTES) this.flush();
  }

  #write(frame: string, count: number): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    try {
      this.#ws.send(frame);
    } catch {
      return; // the socket is closing; its close event ends the session
    }
    this.#core.sent(frame.length, count);
  }

  #error(error: SessionError, id: string | undefined): void {
    const { code, message, room, retryAfterMs } = error;
    this.#send(encodeError(code, message, { id, room, retryAfterMs }));
  }

  #receive(data: unknown): void {
    const core = this.#core;
    if (core.ended) return;
    const retryAfterMs = core.admit(data);
    if (retryAfterMs < 0) return;
    if (typeof data !== "string") {
      if (retryAfterMs > 0) return this.#rateLimited(retryAfterMs, undefined);
      this.#ctx.counters.badRequests++;
      return this.#error({
        code: ErrorCode.BadRequest,
        message: "binary frames are not supported; send JSON text",
      }, undefined);
    }
    const parsed = parseClientFrame(data, { maxPayloadDepth: this.#ctx.limits.maxPayloadDepth });
    if (retryAfterMs > 0) {
      return this.#rateLimited(retryAfterMs, parsed.ok ? parsed.message.id : parsed.id);
    }
    if (!parsed.ok) {
      this.#ctx.counters.badRequests++;
      return this.#error({ code: ErrorCode.BadRequest, message: parsed.error }, parsed.id);
    }
    this.#handle(parsed.message);
  }

  #rateLimited(retryAfterMs: number, id: string | undefined): void {
    const error = this.#core.rateLimited(retryAfterMs);
    if (error !== null) this.#error(error, id);
  }

  /** Answers an outcome: `reply(value)` when it succeeded, `error` otherwise. */
  #answer<T>(id: string | undefined, reply?: (value: T) => string | undefined) {
    return (outcome: Outcome<T>): void => {
      if (!outcome.ok) return this.#error(outcome.error, id);
      const frame = reply?.(outcome.value);
      if (frame !== undefined) this.#send(frame);
    };
  }

  /** A publish, after the publish hook when its room has one (order kept either way). */
  #publish(room: string, payload: JsonValue, id: string | undefined): void {
    const answer = this.#answer<StreamPosition | undefined>(
      id,
      (position) => id === undefined ? undefined : encodeAck(id, position?.offset),
    );
    this.#line.submit(room, payload, (final) =>
      this.#core.publish(
        room,
        // Rooms store and carry the native frame, encoded once here.
        encodeRoomMessage(room, JSON.stringify(final), this.#core.userId, this.#ctx.clock.now()),
        id,
        answer,
      ), answer);
  }

  #handle(message: ClientMessage): void {
    const core = this.#core;
    const id = message.id;
    switch (message.type) {
      case "message":
        return this.#publish(message.room, message.payload, id);
      case "join":
        return core.join(
          message.room,
          message.since,
          this.#answer(id, (join) => encodeJoined(message.room, id, join)),
        );
      case "history":
        void core.history(
          message.room,
          message.limit ?? 100,
          message.before,
          this.#answer(id, (page) => encodeHistory(message.room, page, id)),
        );
        return;
      case "leave":
        return core.leave(message.room, this.#answer(id, () => encodeLeft(message.room, id)));
      case "presence":
        return core.presenceOf(message.room, id, this.#answer(id));
      case "ping":
        return this.#send(encodePong(id));
      case "rpc":
        void this.#ctx.backend.rpc(core, message.method, message.payload).then(
          this.#answer(message.id, (payload) => encodeRpcResult(message.id, payload)),
        );
        return;
      case "refresh":
        void core.refresh(
          message.token,
          this.#answer(id, (expiresAt) => encodeRefreshed(expiresAt, id)),
        );
        return;
    }
  }
}
