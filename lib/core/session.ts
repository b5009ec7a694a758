/**
 * One connection's session, whatever its protocol: its principal, memberships
 * and their access, the operations a client may ask for (join, leave,
 * publish, history, presence, refresh), token expiry, flood and slow-consumer
 * accounting. Operations answer with {@linkcode Outcome}s, never frames; what
 * the session must tell the client unasked goes through its
 * {@linkcode SessionPort}. Everything is released by one idempotent `end`,
 * whichever path gets there first (client close, error, heartbeat timeout,
 * token expiry, flooding, slow consumer, revocation, shutdown).
 *
 * @module
 */
import { AuthError, type Principal } from "./auth.ts";
import { CloseCode, ErrorCode } from "../codes.ts";
import { socketDedupeKey } from "./dedupe.ts";
import { type HistoryPage, NoHistoryError } from "./history_reader.ts";
import { Counters } from "../metrics.ts";
import type { PresenceEvent, PresenceMember } from "./presence/mod.ts";
import type { RoomAccess } from "./room_policy.ts";
import type { Member, PublishOutcome } from "./rooms.ts";
import { ReplayInterruptedError, ReplayOverflowError, type StreamJoin } from "./room_stream.ts";
import type { StreamPosition } from "../store/history/types.ts";
import { Backlog } from "./backlog.ts";
import { ExpiryTimer } from "./expiry.ts";
import { Intake } from "./intake.ts";
import { ShownAs } from "./shown_as.ts";
import { withConnectGrant } from "../hooks/connect.ts";
import { publishRefusal, refused, storeDown } from "./refusals.ts";
import type { Answer, CoreContext, JoinGrant, SessionError, SessionInfo } from "./types.ts";
import type { SessionPort } from "./types.ts";

/**
 * A connected, authenticated client, as the core sees it.
 *
 * @example
 * ```ts ignore
 * const session = new CoreSession(ctx, principal, info, (core) => new MyAdapter(core, socket));
 * session.join("chat:1", undefined, (outcome) => reply(outcome));
 * ```
 */
export class CoreSession implements Member {
  /** Random id, told to the client. */
  readonly id: string;
  readonly info: SessionInfo;
  readonly openedAt: number;
  readonly #ctx: CoreContext;
  readonly #port: SessionPort;
  #principal: Principal;
  #access: (room: string) => RoomAccess;
  readonly #memberships = new Map<string, RoomAccess>();
  readonly #joining = new Set<string>();
  /** Who presence shows in each room (see {@linkcode JoinGrant.as}). */
  readonly #shownAs = new ShownAs(this);
  #ended = false;
  readonly #intake: Intake;
  readonly #expiry: ExpiryTimer;
  /** Aborted when the session ends: stops replays waiting for the socket to drain. */
  readonly #alive = new AbortController();
  readonly #backlog: Backlog;
  messagesOut = 0;

  /**
   * @param ctx shared services
   * @param principal who the token names
   * @param info handshake facts
   * @param attach builds the protocol adapter that carries this session
   */
  constructor(
    ctx: CoreContext,
    principal: Principal,
    info: SessionInfo,
    attach: (session: CoreSession) => SessionPort,
  ) {
    this.#ctx = ctx;
    this.id = info.connectionId ?? crypto.randomUUID();
    this.#principal = principal;
    this.#access = ctx.policy.forPrincipal(principal);
    this.info = info;
    this.openedAt = ctx.clock.now();
    this.#intake = new Intake(ctx, this);
    this.#expiry = new ExpiryTimer(ctx.clock, ctx.limits.expiryWarningMs, {
      warn: (exp) => this.#port.expiring(exp),
      expire: () => {
        this.#ctx.audit.record("expiry", { user: this.userId, connection: this.id });
        this.close(CloseCode.TokenExpired, "token expired");
      },
    });
    this.#backlog = new Backlog({
      buffered: () => this.#port.bufferedAmount,
      maxBytes: ctx.limits.maxBufferedBytes,
      stallMs: ctx.limits.replayStallMs,
      clock: ctx.clock,
      signal: this.#alive.signal,
      onSlow: (unread) => this.#slowConsumer(unread),
    });
    this.#port = attach(this);
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

  /** Messages received from the client. */
  get messagesIn(): number {
    return this.#intake.messages;
  }

  /** Whether the session has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes queued in the transport, not yet written to the network. */
  get bufferedAmount(): number {
    return this.#port.bufferedAmount;
  }

  /** True once the transport is fully closed. */
  get socketClosed(): boolean {
    return this.#port.closed;
  }

  /** The transport is open (the client was told hello): starts the expiry timer. */
  start(): void {
    if (!this.#ended) this.#expiry.watch(this.#principal.expiresAt);
  }

  /** A room message for this member ({@linkcode Member.send}). */
  send(frame: string): void {
    if (!this.#ended) this.#port.deliver(frame);
  }

  /** A presence event of one of its rooms. */
  presence(event: PresenceEvent): void {
    if (!this.#ended) this.#port.presence(event);
  }

  /**
   * The adapter wrote `count` messages in `bytes` to the transport: counts
   * them, and ends the session as a slow consumer when the transport's
   * backlog passed `MAX_BUFFERED_BYTES` (see {@linkcode Backlog.wrote}).
   */
  sent(bytes: number, count: number): void {
    this.messagesOut += count;
    const counters = this.#ctx.counters;
    counters.messagesOut += count;
    counters.bytesOut += bytes;
    this.#backlog.wrote(bytes);
  }

  /**
   * Paces a recovery's replay (see {@linkcode Member.drain}): waits until the
   * transport's backlog is at most a quarter of `MAX_BUFFERED_BYTES`. Closes
   * the session as a slow consumer when the backlog plus `held()` passes
   * `MAX_BUFFERED_BYTES`, or when the backlog has not shrunk for
   * `replayStallMs`.
   */
  async drain(held: () => number): Promise<boolean> {
    if (this.#ended) return false;
    this.#port.flush();
    return await this.#backlog.drain(held) && !this.#ended;
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

  /**
   * Accounts for one message from the client (text, or binary as an
   * `ArrayBuffer`): counts it, closes the session when it is over
   * `MAX_MESSAGE_BYTES`, and takes a rate-limit token, whatever the message
   * turns out to be (errors are not free to answer either). Returns how long
   * the client must wait (0: handle it), or -1 when the session closed.
   */
  admit(data: unknown): number {
    return this.#intake.admit(data);
  }

  /** Closes the session for a message over `MAX_MESSAGE_BYTES` (`size`: its bytes, if whole). */
  tooBig(size: number | undefined): void {
    this.#intake.tooBig(size);
  }

  /**
   * A message came in while rate limited ({@linkcode admit} returned
   * `retryAfterMs`): returns the refusal to answer, or null when the client
   * kept flooding and the session was closed with 4429.
   */
  rateLimited(retryAfterMs: number): SessionError | null {
    return this.#intake.rateLimited(retryAfterMs);
  }

  /**
   * Publishes a room frame, encoded by the adapter's codec, to a joined room
   * (the same string then goes to every member, as it is stored). Answers the
   * message's stream position in a history room (undefined elsewhere); a
   * `dedupeId` makes a resend within the dedupe window a no-op that answers
   * the same position.
   */
  publish(
    room: string,
    frame: string,
    dedupeId: string | undefined,
    answer: Answer<StreamPosition | undefined>,
  ): void {
    const access = this.#memberships.get(room);
    if (access === undefined) {
      return answer(refused(ErrorCode.NotJoined, "join the room before publishing", room));
    }
    if (access !== "publish") {
      return answer(refused(ErrorCode.Forbidden, "this room is read-only for you", room));
    }
    let outcome: PublishOutcome | Promise<PublishOutcome>;
    try {
      outcome = this.#ctx.rooms.publish(
        room,
        frame,
        dedupeId === undefined ? {} : { dedupeKey: socketDedupeKey(this.userId, dedupeId) },
      );
    } catch (err) {
      return answer(publishRefusal(this.#ctx, this, err, room));
    }
    if (!(outcome instanceof Promise)) return answer({ ok: true, value: undefined });
    outcome.then(
      ({ position, duplicate }) => {
        if (duplicate === true) this.#ctx.counters.duplicates++;
        answer({ ok: true, value: position });
      },
      (err) => answer(publishRefusal(this.#ctx, this, err, room)),
    );
  }

  /** A page of a history room: the newest `limit` messages before offset `before`. */
  async history(
    room: string,
    limit: number,
    before: number | undefined,
    answer: Answer<HistoryPage>,
  ): Promise<void> {
    if (this.#access(room) === "none") {
      Counters.bump(this.#ctx.counters.denials, ErrorCode.Forbidden);
      return answer(refused(ErrorCode.Forbidden, "you may not read this room", room));
    }
    let page: HistoryPage;
    try {
      page = await this.#ctx.history.page(room, { limit, before });
    } catch (err) {
      if (this.#ended) return;
      if (err instanceof NoHistoryError) {
        return answer(refused(ErrorCode.BadRequest, err.message, room));
      }
      const down = storeDown(this.#ctx, err, "the history store is unavailable", room);
      if (down === undefined) throw err;
      return answer(down);
    }
    answer({ ok: true, value: page });
  }

  /**
   * Joins a room the token or policy grants (or, with `grant.access`, the
   * adapter did); `since` asks to recover what was missed after that
   * position. The successful answer comes from inside the join, before the
   * room's first message (a recovery's replay follows it at once); joining a
   * room already joined answers its position again.
   */
  join(
    room: string,
    since: StreamPosition | undefined,
    answer: Answer<StreamJoin | null>,
    grant: JoinGrant = {},
  ): void {
    if (this.#memberships.has(room)) {
      const position = this.#ctx.rooms.streamPosition(room);
      return answer({ ok: true, value: position === undefined ? null : { position } });
    }
    if (this.#joining.has(room)) {
      return answer(refused(ErrorCode.BadRequest, "a join for this room is in progress", room));
    }
    const access = grant.access ?? this.#access(room);
    if (access === "none") {
      return this.#ctx.joins.decide(this, room, answer, (g) => this.join(room, since, answer, g));
    }
    const max = this.#ctx.limits.maxRoomsPerConnection;
    if (this.#memberships.size + this.#joining.size >= max) {
      Counters.bump(this.#ctx.counters.denials, ErrorCode.TooManyRooms);
      return answer(refused(ErrorCode.TooManyRooms, `at most ${max} rooms per connection`, room));
    }
    this.#joining.add(room);
    if (grant.as !== undefined) this.#shownAs.set(room, grant.as);
    void this.#joinRoom(room, access, since, answer);
  }

  async #joinRoom(
    room: string,
    access: RoomAccess,
    since: StreamPosition | undefined,
    answer: Answer<StreamJoin | null>,
  ): Promise<void> {
    const onJoined = (join: StreamJoin | null) => {
      this.#joining.delete(room);
      if (this.#ended) return;
      this.#memberships.set(room, access);
      this.#ctx.counters.joins++;
      this.#ctx.audit.record("join", { user: this.userId, connection: this.id, room, access });
      answer({ ok: true, value: join });
      // The answer may have left the room (Pusher's unsubscribe while joining) or ended the session.
      if (this.#ended || !this.#memberships.has(room)) return;
      this.#ctx.presence?.join(room, this.#shownAs.of(room));
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
      this.#ctx.presence?.leave(room, this.#shownAs.of(room));
      this.#shownAs.delete(room);
      this.#joinFailed(err, room, answer);
      return;
    }
    if (this.#ended) this.#ctx.rooms.leave(room, this);
  }

  #joinFailed(err: unknown, room: string, answer: Answer<StreamJoin | null>): void {
    if (err instanceof ReplayOverflowError) {
      return this.#slowConsumer(err.heldBytes + this.bufferedAmount);
    }
    if (err instanceof ReplayInterruptedError) {
      const { userId: user, id: connection } = this;
      this.#ctx.audit.record("replay_interrupted", { user, connection, room, error: err.message });
      return this.close(CloseCode.TryAgainLater, "recovery interrupted; reconnect to resume");
    }
    const down = storeDown(this.#ctx, err, "the history store is unavailable", room);
    answer(down ?? refused(ErrorCode.Internal, "the room could not be joined; try again", room));
  }

  /** Who presence shows for this session in `room` (the adapter's choice, else the session). */
  shownIn(room: string): PresenceMember {
    return this.#shownAs.of(room);
  }

  /** Leaves a joined room. */
  leave(room: string, answer: Answer<void>): void {
    if (!this.#memberships.delete(room)) {
      return answer(refused(ErrorCode.NotJoined, "not a member of this room", room));
    }
    this.#left(room, undefined);
    answer({ ok: true, value: undefined });
  }

  #left(room: string, reason: "revoked" | undefined): void {
    this.#ctx.rooms.leave(room, this);
    this.#ctx.presence?.leave(room, this.#shownAs.of(room));
    this.#shownAs.delete(room);
    this.#ctx.counters.leaves++;
    this.#ctx.audit.record("leave", { user: this.userId, connection: this.id, room, reason });
  }

  /**
   * Asks for a fresh snapshot of a joined presence room; it arrives through
   * {@linkcode SessionPort.presence} with `requestId`, before the answer.
   */
  presenceOf(room: string, requestId: string | undefined, answer: Answer<void>): void {
    if (!this.#memberships.has(room)) {
      return answer(refused(ErrorCode.NotJoined, "join the room first", room));
    }
    if (this.#ctx.presence?.request(room, this.#shownAs.of(room), requestId) !== true) {
      return answer(refused(ErrorCode.BadRequest, "this room does not track presence", room));
    }
    answer({ ok: true, value: undefined });
  }

  /**
   * Replaces the token: rooms the new one no longer grants are left (told
   * through {@linkcode SessionPort.revoked}) and expiry follows the new `exp`.
   * Answers the new expiry; a token naming another user closes the session.
   */
  async refresh(token: string, answer: Answer<number | null>): Promise<void> {
    let principal: Principal;
    try {
      principal = withConnectGrant(await this.#ctx.verifier.verify(token), this.info.connectGrant);
    } catch (err) {
      if (this.#ended) return;
      const reason = err instanceof AuthError ? err.reason : "malformed";
      this.#ctx.audit.record("refresh_failed", { user: this.userId, connection: this.id, reason });
      return answer(refused(
        ErrorCode.Unauthorized,
        "refresh token rejected; the connection keeps its current expiry",
      ));
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
      if (access !== "none") {
        this.#memberships.set(room, access);
        continue;
      }
      this.#memberships.delete(room);
      this.#left(room, "revoked");
      this.#port.revoked(room);
    }
    this.#expiry.watch(this.#principal.expiresAt);
    this.#ctx.audit.record("refresh", {
      user: this.userId,
      connection: this.id,
      expiresAt: principal.expiresAt,
    });
    answer({ ok: true, value: principal.expiresAt });
  }

  /**
   * The adapter authenticated the user by its own protocol's proof (Pusher's
   * `signin`): the session is theirs from now on, for revocations and the
   * audit log, and expires with `principal.expiresAt`. Rooms are untouched.
   */
  adopt(principal: Principal): void {
    if (this.#ended) return;
    this.#principal = principal;
    this.#ctx.audit.record("signin", { user: principal.userId, connection: this.id });
    this.#expiry.watch(principal.expiresAt);
  }

  /** Closes the transport with `code` and releases everything at once. */
  close(code: number, reason: string): void {
    if (this.#ended) return;
    this.#port.close(code, reason);
    this.end(code, reason, "server");
  }

  /**
   * Releases everything the session holds; called by {@linkcode close}, and
   * by the adapter when its transport closed or failed. Idempotent (a
   * socket's close can fire twice: idle timeout, 1001 then 1005).
   */
  end(code: number, reason: string, by: "client" | "server" | "error"): void {
    if (this.#ended) return;
    this.#ended = true;
    // A constant reason: abort() without one builds a DOMException, stack and all, per session.
    this.#alive.abort("session ended");
    Counters.bump(this.#ctx.counters.closes, Counters.closeLabel(code));
    this.#expiry.clear();
    for (const room of this.#memberships.keys()) {
      this.#ctx.rooms.leave(room, this);
      this.#ctx.presence?.leave(room, this.#shownAs.of(room));
      this.#ctx.counters.leaves++;
    }
    this.#memberships.clear(); // #shownAs stays: a join in flight leaves as whom it joined
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
    this.#ctx.onEnd(this, code, reason);
  }
}
