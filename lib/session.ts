/**
 * One session per WebSocket: its principal, memberships, timers and counters.
 * Everything a connection owns lives here and is released by one idempotent
 * `#end`, whichever path gets there first (client close, error, heartbeat
 * timeout, token expiry, flooding, slow consumer, shutdown).
 *
 * @module
 */
import type { AuditSink } from "./audit.ts";
import type { WebSocketLike } from "./edge/types.ts";
import type { Principal, TokenVerifier } from "./auth.ts";
import { AuthError } from "./auth.ts";
import type { Clock, TimerId } from "./clock.ts";
import { CloseCode, ErrorCode } from "./codes.ts";
import { Counters } from "./metrics.ts";
import type { ClientMessage, ErrorFields, ServerMessage } from "./protocol.ts";
import { socketDedupeKey } from "./dedupe.ts";
import { waitForDrain } from "./drain.ts";
import { type HistoryPage, type HistoryReader, NoHistoryError } from "./history_reader.ts";
import {
  encode,
  encodeError,
  encodePresence,
  encodeRoomMessage,
  parseClientFrame,
  utf8Length,
  withPosition,
} from "./protocol.ts";
import type { RateLimiter } from "./rate_limiter.ts";
import type { RoomAccess, RoomPolicy } from "./room_policy.ts";
import {
  type Member,
  MessageTooLargeError,
  type PublishOutcome,
  type RoomManager,
} from "./rooms.ts";
import { ReplayInterruptedError, ReplayOverflowError, type StreamJoin } from "./room_stream.ts";
import type { StreamPosition } from "./store/history/types.ts";
import { StoreUnavailableError } from "./store/types.ts";
import type { TokenSource } from "./handshake.ts";
import type { WriteBatcher } from "./write_batcher.ts";
import type { PresenceEvent, PresenceTracker } from "./presence/mod.ts";
import { errorMessage } from "./errors.ts";

/** Window over which rate-limit violations are counted towards a 4429 close. */
export const FLOOD_WINDOW_MS = 10_000;
/** A batch is written at once when it reaches this size, whatever the turn. */
export const MAX_BATCH_BYTES = 64 * 1024;
/** How many bytes may be written between two reads of `bufferedAmount`. */
export const BACKLOG_CHECK_BYTES = 16 * 1024;
/** setTimeout's largest delay; longer token lifetimes are waited out in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Shared services a session uses; owned by the server. */
export interface SessionContext {
  readonly rooms: RoomManager;
  /** Answers `history` requests. */
  readonly history: HistoryReader;
  /** Presence rooms' members; absent when no room can track presence. */
  readonly presence?: PresenceTracker;
  readonly limiter: RateLimiter;
  readonly verifier: TokenVerifier;
  readonly policy: RoomPolicy;
  readonly clock: Clock;
  readonly audit: AuditSink;
  readonly counters: Counters;
  /** Coalesces writes of `?batch=1` sessions. */
  readonly batcher: WriteBatcher;
  readonly instanceId: string;
  readonly limits: {
    readonly maxMessageBytes: number;
    /** `MAX_PAYLOAD_DEPTH`: deeper payloads are refused with `bad_request`. */
    readonly maxPayloadDepth: number;
    readonly maxRoomsPerConnection: number;
    readonly maxBufferedBytes: number;
    /** How long a recovery's replay waits for a socket that reads nothing (`HEARTBEAT_MS`). */
    readonly replayStallMs: number;
    readonly maxViolations: number;
    readonly expiryWarningMs: number;
  };
  /** Called exactly once when the session ends. */
  onEnd(session: Session): void;
}

/** Facts about the handshake, for the session and the audit log. */
export interface SessionInfo {
  readonly ip: string;
  readonly origin: string | null;
  readonly source: TokenSource;
  /** Opt-in write coalescing (`?batch=1`). */
  readonly batch: boolean;
}

function encodeJoined(room: string, id: string | undefined, join: StreamJoin | null): string {
  const reply: ServerMessage & { type: "joined" } = { type: "joined", room };
  if (id !== undefined) reply.id = id;
  if (join !== null) {
    reply.offset = join.position.offset;
    reply.epoch = join.position.epoch;
    if (join.recovered !== undefined) reply.recovered = join.recovered;
    if (join.missed !== undefined) reply.missed = join.missed;
  }
  return encode(reply);
}

/** Serializes a `history` reply around stored frames, without parsing them again. */
function encodeHistoryPage(room: string, page: HistoryPage, id: string | undefined): string {
  const messages = page.entries.map((e) => withPosition(e.frame, e.offset, page.position.epoch));
  return `{"type":"history","room":${JSON.stringify(room)},${
    id === undefined ? "" : `"id":${JSON.stringify(id)},`
  }"messages":[${messages.join(",")}],"offset":${page.position.offset},"epoch":${
    JSON.stringify(page.position.epoch)
  },"more":${page.more}}`;
}

/** A connected, authenticated client. */
export class Session implements Member {
  /** Random id, sent in `welcome`. */
  readonly id: string = crypto.randomUUID();
  readonly #ctx: SessionContext;
  readonly #ws: WebSocketLike;
  readonly info: SessionInfo;
  readonly openedAt: number;
  #principal: Principal;
  #access: (room: string) => RoomAccess;
  readonly #memberships = new Map<string, RoomAccess>();
  readonly #joining = new Set<string>();
  #ended = false;
  #violations = 0;
  #violationWindowStart = 0;
  #expiryTimer: TimerId | undefined;
  /** The `exp` an `expiring` warning was already sent for. */
  #warnedFor: number | null = null;
  #batch: string[] | null = null;
  #batchBytes = 0;
  /** Bytes written since `bufferedAmount` was last read. */
  #unchecked = 0;
  /** Aborted when the session ends: stops replays waiting for the socket to drain. */
  readonly #alive = new AbortController();
  messagesIn = 0;
  messagesOut = 0;

  /**
   * @param ctx shared services
   * @param ws the upgraded socket (not yet open)
   * @param principal who the token names
   * @param info handshake facts
   */
  constructor(ctx: SessionContext, ws: WebSocketLike, principal: Principal, info: SessionInfo) {
    this.#ctx = ctx;
    this.#ws = ws;
    this.#principal = principal;
    this.#access = ctx.policy.forPrincipal(principal);
    this.info = info;
    this.openedAt = ctx.clock.now();
    ws.binaryType = "arraybuffer";
    ws.onopen = () => this.#open();
    ws.onmessage = (event) => this.#receive(event.data);
    ws.onclose = (event) => this.#end(event.code, event.reason, "client");
    ws.onerror = () => this.#end(CloseCode.InternalError, "socket error", "error");
    // The `ws` engine refuses a message over the limit as a whole, before it arrives.
    ws.onoversize = () => this.#tooBig(undefined);
  }

  /** Who the connection is, as of its latest token (replaced by `refresh`). */
  get principal(): Principal {
    return this.#principal;
  }

  /** The user id (`sub`). */
  get userId(): string {
    return this.#principal.userId;
  }

  /** The token's presence `info` claim (the latest token's, after a refresh). */
  get presenceInfo(): Principal["info"] {
    return this.#principal.info;
  }

  /** Rooms this session belongs to. */
  get rooms(): ReadonlyMap<string, RoomAccess> {
    return this.#memberships;
  }

  /** Whether the session has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes queued in the socket, not yet written to the network. */
  get bufferedAmount(): number {
    return this.#ended && this.#ws.readyState === WebSocket.CLOSED ? 0 : this.#ws.bufferedAmount;
  }

  /** True once the socket is fully closed. */
  get socketClosed(): boolean {
    return this.#ws.readyState === WebSocket.CLOSED;
  }

  #open(): void {
    if (this.#ended) return;
    this.send(encode({
      type: "welcome",
      connectionId: this.id,
      userId: this.userId,
      expiresAt: this.#principal.expiresAt,
      instanceId: this.#ctx.instanceId,
    }));
    this.#scheduleExpiry();
  }

  /** Sends a presence event of one of its rooms, as the native protocol's frame. */
  presence(event: PresenceEvent): void {
    this.send(encodePresence(event));
  }

  /** Sends a frame; a full socket buffer ends the session as a slow consumer. */
  send(frame: string): void {
    if (this.#ended) return;
    if (this.#batch !== null || this.info.batch) {
      this.#enqueue(frame);
      return;
    }
    this.#write(frame);
  }

  #enqueue(frame: string): void {
    if (this.#batch === null) {
      this.#batch = [frame];
      this.#batchBytes = frame.length;
      this.#ctx.batcher.schedule(this);
      return;
    }
    this.#batch.push(frame);
    this.#batchBytes += frame.length;
    // A huge fan-out within one turn must not pile up unbounded in the batch.
    if (this.#batchBytes >= MAX_BATCH_BYTES) this.flush();
  }

  /** Writes the held frames as one newline-separated frame (batching sessions). */
  flush(): void {
    const frames = this.#batch;
    this.#batch = null;
    this.#batchBytes = 0;
    this.#ctx.batcher.cancel(this);
    if (frames === null || this.#ended) return;
    this.#write(frames.length === 1 ? frames[0]! : frames.join("\n"), frames.length);
  }

  #write(frame: string, count = 1): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    try {
      this.#ws.send(frame);
    } catch {
      return; // the socket is closing; its close event ends the session
    }
    this.messagesOut += count;
    const { counters, limits } = this.#ctx;
    counters.messagesOut += count;
    counters.bytesOut += frame.length;
    // bufferedAmount is a call into the runtime; on the fan-out path it is
    // read once per BACKLOG_CHECK_BYTES written, so the backlog can pass the
    // limit by at most that much (or one frame) before we notice.
    this.#unchecked += frame.length;
    if (this.#unchecked < BACKLOG_CHECK_BYTES) return;
    this.#unchecked = 0;
    const buffered = this.#ws.bufferedAmount;
    if (buffered > limits.maxBufferedBytes) this.#slowConsumer(buffered);
  }

  /**
   * Paces a recovery's replay (see {@linkcode Member.drain}): waits until the
   * socket's backlog is at most a quarter of `MAX_BUFFERED_BYTES`. Closes the
   * session as a slow consumer when the backlog plus `held()` passes
   * `MAX_BUFFERED_BYTES`, or when the backlog has not shrunk for
   * `replayStallMs`.
   */
  async drain(held: () => number): Promise<boolean> {
    if (this.#ended) return false;
    if (this.#batch !== null) this.flush();
    const { clock, limits } = this.#ctx;
    const { result, unread } = await waitForDrain({
      buffered: () => this.#ws.bufferedAmount,
      held,
      mark: limits.maxBufferedBytes / 4,
      limit: limits.maxBufferedBytes,
      stallMs: limits.replayStallMs,
      clock,
      signal: this.#alive.signal,
    });
    if (result === "drained") return !this.#ended;
    if (result !== "aborted") this.#slowConsumer(unread);
    return false;
  }

  #slowConsumer(bufferedBytes: number): void {
    if (this.#ended) return;
    this.#ctx.counters.slowConsumers++;
    this.#ctx.audit.record("slow_consumer", {
      user: this.userId,
      connection: this.id,
      bufferedBytes,
    });
    this.close(CloseCode.PolicyViolation, "slow consumer: too much unread data");
  }

  #error(code: ErrorCode, message: string, fields?: ErrorFields): void {
    this.send(encodeError(code, message, fields));
  }

  #receive(data: unknown): void {
    if (this.#ended) return;
    const { counters, limits } = this.#ctx;
    this.messagesIn++;
    counters.messagesIn++;
    const binary = typeof data !== "string";
    const size = binary
      ? (data instanceof ArrayBuffer ? data.byteLength : 0)
      : utf8Length(data, limits.maxMessageBytes);
    counters.bytesIn += size;
    if (size > limits.maxMessageBytes) return this.#tooBig(size);

    // Every frame costs a token, bad ones included: errors are not free to answer.
    const retryAfterMs = this.#ctx.limiter.take(this.userId);
    if (binary) {
      if (retryAfterMs > 0) return this.#rateLimited(retryAfterMs, undefined);
      counters.badRequests++;
      return this.#error(ErrorCode.BadRequest, "binary frames are not supported; send JSON text");
    }
    const parsed = parseClientFrame(data, { maxPayloadDepth: limits.maxPayloadDepth });
    if (retryAfterMs > 0) {
      return this.#rateLimited(retryAfterMs, parsed.ok ? parsed.message.id : parsed.id);
    }
    if (!parsed.ok) {
      counters.badRequests++;
      return this.#error(ErrorCode.BadRequest, parsed.error, { id: parsed.id });
    }
    this.#handle(parsed.message);
  }

  /** @param size the message's bytes, when it arrived whole */
  #tooBig(size: number | undefined): void {
    this.#ctx.counters.framesTooBig++;
    this.#ctx.audit.record("frame_too_big", {
      user: this.userId,
      connection: this.id,
      bytes: size ?? null,
    });
    this.close(CloseCode.MessageTooBig, `message over ${this.#ctx.limits.maxMessageBytes} bytes`);
  }

  #rateLimited(retryAfterMs: number, id: string | undefined): void {
    const { clock, counters, limits } = this.#ctx;
    counters.rateLimited++;
    const now = clock.now();
    if (now - this.#violationWindowStart > FLOOD_WINDOW_MS) {
      this.#violationWindowStart = now;
      this.#violations = 0;
      this.#ctx.audit.record("rate_limited", { user: this.userId, connection: this.id });
    }
    if (++this.#violations > limits.maxViolations) {
      counters.floodClosed++;
      this.#ctx.audit.record("flood_closed", { user: this.userId, connection: this.id });
      this.close(CloseCode.RateLimited, "rate limit exceeded repeatedly");
      return;
    }
    this.#error(ErrorCode.RateLimited, "rate limit exceeded", { id, retryAfterMs });
  }

  #handle(message: ClientMessage): void {
    switch (message.type) {
      case "message":
        return this.#publish(message.room, message.payload, message.id);
      case "join":
        void this.#join(message.room, message.id, message.since);
        return;
      case "history":
        void this.#history(message.room, message.limit ?? 100, message.before, message.id);
        return;
      case "leave":
        return this.#leave(message.room, message.id);
      case "presence":
        return this.#presence(message.room, message.id);
      case "ping":
        return this.send(
          encode(message.id === undefined ? { type: "pong" } : { type: "pong", id: message.id }),
        );
      case "refresh":
        void this.#refresh(message.token, message.id);
        return;
    }
  }

  #publish(room: string, payload: unknown, id: string | undefined): void {
    const access = this.#memberships.get(room);
    if (access === undefined) {
      return this.#error(ErrorCode.NotJoined, "join the room before publishing", { id, room });
    }
    if (access !== "publish") {
      return this.#error(ErrorCode.Forbidden, "this room is read-only for you", { id, room });
    }
    const frame = encodeRoomMessage(
      room,
      JSON.stringify(payload),
      this.userId,
      this.#ctx.clock.now(),
    );
    let outcome: PublishOutcome | Promise<PublishOutcome>;
    try {
      outcome = this.#ctx.rooms.publish(
        room,
        frame,
        id === undefined ? {} : { dedupeKey: socketDedupeKey(this.userId, id) },
      );
    } catch (err) {
      return this.#publishFailed(err, room, id);
    }
    if (!(outcome instanceof Promise)) {
      if (id !== undefined) this.send(encode({ type: "ack", id }));
      return;
    }
    outcome.then(
      ({ position, duplicate }) => {
        if (duplicate === true) this.#ctx.counters.duplicates++;
        if (id === undefined) return;
        this.send(encode(
          position === undefined
            ? { type: "ack", id }
            : { type: "ack", id, offset: position.offset },
        ));
      },
      (err) => this.#publishFailed(err, room, id),
    );
  }

  #publishFailed(err: unknown, room: string, id: string | undefined): void {
    if (err instanceof MessageTooLargeError) {
      return this.#error(ErrorCode.PayloadTooLarge, "message too large for the bus", { id, room });
    }
    if (err instanceof StoreUnavailableError) {
      return this.#unavailable(
        err,
        "the history store is unavailable; the message was not delivered, retry with the same id",
        { id, room },
      );
    }
    this.#ctx.audit.record("internal_error", {
      user: this.userId,
      connection: this.id,
      room,
      error: errorMessage(err),
    });
    this.#error(ErrorCode.Internal, "the message could not be published", { id, room });
  }

  /** Answers `unavailable` with the store's retry hint, and counts it. */
  #unavailable(err: StoreUnavailableError, message: string, fields: ErrorFields): void {
    this.#ctx.counters.unavailable++;
    this.#error(ErrorCode.Unavailable, message, { ...fields, retryAfterMs: err.retryAfterMs });
  }

  async #history(
    room: string,
    limit: number,
    before: number | undefined,
    id: string | undefined,
  ): Promise<void> {
    if (this.#access(room) === "none") {
      Counters.bump(this.#ctx.counters.denials, ErrorCode.Forbidden);
      return this.#error(ErrorCode.Forbidden, "you may not read this room", { id, room });
    }
    let page: HistoryPage;
    try {
      page = await this.#ctx.history.page(room, { limit, before });
    } catch (err) {
      if (this.#ended) return;
      if (err instanceof NoHistoryError) {
        return this.#error(ErrorCode.BadRequest, err.message, { id, room });
      }
      if (err instanceof StoreUnavailableError) {
        return this.#unavailable(err, "the history store is unavailable", { id, room });
      }
      throw err;
    }
    this.send(encodeHistoryPage(room, page, id));
  }

  async #join(room: string, id: string | undefined, since?: StreamPosition): Promise<void> {
    if (this.#memberships.has(room)) {
      const position = this.#ctx.rooms.streamPosition(room);
      return this.send(encodeJoined(room, id, position === undefined ? null : { position }));
    }
    if (this.#joining.has(room)) {
      return this.#error(ErrorCode.BadRequest, "a join for this room is in progress", { id, room });
    }
    const access = this.#access(room);
    if (access === "none") {
      Counters.bump(this.#ctx.counters.denials, ErrorCode.Forbidden);
      this.#ctx.audit.record("deny", { user: this.userId, connection: this.id, room });
      return this.#error(ErrorCode.Forbidden, "you may not join this room", { id, room });
    }
    if (this.#memberships.size + this.#joining.size >= this.#ctx.limits.maxRoomsPerConnection) {
      Counters.bump(this.#ctx.counters.denials, ErrorCode.TooManyRooms);
      return this.#error(
        ErrorCode.TooManyRooms,
        `at most ${this.#ctx.limits.maxRoomsPerConnection} rooms per connection`,
        { id, room },
      );
    }
    this.#joining.add(room);
    // `joined` goes out from inside the join, before the first frame of the
    // room (a recovery's replay follows it at once).
    const onJoined = (join: StreamJoin | null) => {
      this.#joining.delete(room);
      if (this.#ended) return;
      this.#memberships.set(room, access);
      this.#ctx.counters.joins++;
      this.#ctx.audit.record("join", { user: this.userId, connection: this.id, room, access });
      this.send(encodeJoined(room, id, join));
      this.#ctx.presence?.join(room, this);
    };
    try {
      await this.#ctx.rooms.join(
        room,
        this,
        since === undefined ? { onJoined } : { since, onJoined },
      );
    } catch (err) {
      this.#joining.delete(room);
      if (this.#memberships.delete(room)) this.#ctx.counters.leaves++;
      this.#ctx.presence?.leave(room, this);
      if (err instanceof ReplayOverflowError) {
        return this.#slowConsumer(err.heldBytes + this.bufferedAmount);
      }
      if (err instanceof ReplayInterruptedError) {
        this.#ctx.audit.record("replay_interrupted", {
          user: this.userId,
          connection: this.id,
          room,
          error: err.message,
        });
        return this.close(CloseCode.TryAgainLater, "recovery interrupted; reconnect to resume");
      }
      if (err instanceof StoreUnavailableError) {
        return this.#unavailable(err, "the history store is unavailable", { id, room });
      }
      return this.#error(ErrorCode.Internal, "the room could not be joined; try again", {
        id,
        room,
      });
    }
    if (this.#ended) this.#ctx.rooms.leave(room, this);
  }

  #leave(room: string, id: string | undefined, reason?: "revoked"): void {
    if (!this.#memberships.delete(room)) {
      return this.#error(ErrorCode.NotJoined, "not a member of this room", { id, room });
    }
    this.#ctx.rooms.leave(room, this);
    this.#ctx.presence?.leave(room, this);
    this.#ctx.counters.leaves++;
    this.#ctx.audit.record("leave", { user: this.userId, connection: this.id, room, reason });
    const left: { type: "left"; room: string; id?: string; reason?: "revoked" } = {
      type: "left",
      room,
    };
    if (id !== undefined) left.id = id;
    if (reason !== undefined) left.reason = reason;
    this.send(encode(left));
  }

  #presence(room: string, id: string | undefined): void {
    if (!this.#memberships.has(room)) {
      return this.#error(ErrorCode.NotJoined, "join the room first", { id, room });
    }
    if (this.#ctx.presence?.request(room, this, id) !== true) {
      return this.#error(ErrorCode.BadRequest, "this room does not track presence", { id, room });
    }
  }

  async #refresh(token: string, id: string | undefined): Promise<void> {
    let principal: Principal;
    try {
      principal = await this.#ctx.verifier.verify(token);
    } catch (err) {
      if (this.#ended) return;
      const reason = err instanceof AuthError ? err.reason : "malformed";
      this.#ctx.audit.record("refresh_failed", { user: this.userId, connection: this.id, reason });
      return this.#error(
        ErrorCode.Unauthorized,
        "refresh token rejected; the connection keeps its current expiry",
        { id },
      );
    }
    if (this.#ended) return;
    if (principal.userId !== this.userId) {
      this.#ctx.audit.record("refresh_failed", {
        user: this.userId,
        connection: this.id,
        reason: "subject_changed",
      });
      return this.close(CloseCode.Forbidden, "refresh token names another user");
    }
    this.#principal = principal;
    this.#access = this.#ctx.policy.forPrincipal(principal);
    for (const [room] of this.#memberships) {
      const access = this.#access(room);
      if (access === "none") this.#leave(room, undefined, "revoked");
      else this.#memberships.set(room, access);
    }
    this.#scheduleExpiry();
    this.#ctx.audit.record("refresh", {
      user: this.userId,
      connection: this.id,
      expiresAt: principal.expiresAt,
    });
    this.send(encode(
      id === undefined
        ? { type: "refreshed", expiresAt: principal.expiresAt }
        : { type: "refreshed", expiresAt: principal.expiresAt, id },
    ));
  }

  #clearExpiry(): void {
    if (this.#expiryTimer !== undefined) this.#ctx.clock.clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
  }

  /**
   * One timer per session, re-armed as it fires: first for the `expiring`
   * warning (sent once per token), then for the 4401 close. Lifetimes longer
   * than setTimeout's range are waited out in steps.
   */
  #scheduleExpiry(): void {
    this.#clearExpiry();
    const exp = this.#principal.expiresAt;
    if (exp === null) return;
    const { clock, limits } = this.#ctx;
    const expMs = exp * 1000;
    const now = clock.now();
    const warnAt = expMs - limits.expiryWarningMs;
    if (limits.expiryWarningMs > 0 && this.#warnedFor !== exp && now >= warnAt && now < expMs) {
      this.#warnedFor = exp;
      this.send(encode({ type: "expiring", expiresAt: exp }));
    }
    const warnPending = limits.expiryWarningMs > 0 && this.#warnedFor !== exp;
    const next = warnPending ? warnAt : expMs;
    this.#expiryTimer = clock.setTimeout(() => {
      this.#expiryTimer = undefined;
      if (clock.now() >= expMs) {
        this.#ctx.audit.record("expiry", { user: this.userId, connection: this.id });
        this.close(CloseCode.TokenExpired, "token expired");
      } else {
        this.#scheduleExpiry();
      }
    }, Math.max(0, Math.min(next - now, MAX_TIMER_MS)));
  }

  /** Closes the socket with `code` and releases everything at once. */
  close(code: number, reason: string): void {
    if (this.#ended) return;
    this.flush();
    try {
      this.#ws.close(code, reason);
    } catch {
      // already closing
    }
    this.#end(code, reason, "server");
  }

  #end(code: number, reason: string, by: "client" | "server" | "error"): void {
    if (this.#ended) return; // close can fire twice (idle timeout: 1001 then 1005)
    this.#ended = true;
    this.#alive.abort();
    Counters.bump(this.#ctx.counters.closes, Counters.closeLabel(code));
    this.#batch = null;
    this.#ctx.batcher.cancel(this);
    this.#clearExpiry();
    for (const room of this.#memberships.keys()) {
      this.#ctx.rooms.leave(room, this);
      this.#ctx.presence?.leave(room, this);
      this.#ctx.counters.leaves++;
    }
    this.#memberships.clear();
    this.#ctx.audit.record("disconnect", {
      user: this.userId,
      connection: this.id,
      code,
      reason,
      by,
      durationMs: this.#ctx.clock.now() - this.openedAt,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
    });
    this.#ctx.onEnd(this);
  }
}
