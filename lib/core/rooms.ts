/**
 * Room membership for this isolate, and the fan-out of room messages to local
 * members and, through the broker, to other instances. History rooms are
 * stored and fanned out by the broker in one step: a message exists once it
 * has an offset, and each history room's {@linkcode RoomStream} delivers in
 * offset order. Which backend stores and carries them is the broker's
 * business (lib/broker/), never this module's.
 *
 * @module
 */
import type { Broker } from "../broker/types.ts";
import type { Envelope } from "../bus/types.ts";
import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { RoomStream, type StreamJoin } from "./room_stream.ts";
import type { HistoryLimits, StreamPosition } from "../store/history/types.ts";

/** A room message too large for the bus; it was delivered to no one. */
export class MessageTooLargeError extends RangeError {
  /** The bus's envelope limit, in bytes. */
  readonly limit: number;
  /** @param limit the bus's envelope limit */
  constructor(limit: number) {
    super(`Cannot publish: the message is over the bus's limit of ${limit} bytes`);
    this.name = "MessageTooLargeError";
    this.limit = limit;
  }
}

/** Something that can receive room frames: a session. */
export interface Member {
  /** The user whose connection this is, when it is one (for occupancy webhooks). */
  readonly userId?: string;
  /** Sends one serialized frame; must not throw. */
  send(frame: string): void;
  /**
   * Paces a recovery's replay: resolves `true` once the member can take more
   * (its socket's backlog has drained), `false` when it never will (it ended,
   * or was closed as a slow consumer because it stopped reading or its
   * backlog plus the `held()` bytes of live messages queued behind the replay
   * passed its limit). Without it, a replay is written at once.
   */
  drain?(held: () => number): Promise<boolean>;
}

/** Receives the system envelopes of one kind (see {@linkcode RoomManager.onSystem}). */
export type SystemHandler = (envelope: Envelope) => void;

/** Which rooms keep history, and how; see {@linkcode RoomManagerOptions.history}. */
export interface RoomHistoryOptions {
  /** A room's limits, or `null` for a room without history. */
  limitsFor(room: string): HistoryLimits | null;
  /** How long a publish's dedupe key is remembered, in milliseconds. */
  dedupeWindowMs: number;
  /** @default {50} see {@linkcode RoomStreamOptions.gapWaitMs} */
  gapWaitMs?: number;
  /** @default {Infinity} see {@linkcode RoomStreamOptions.maxHeldBytes} */
  maxHeldBytes?: number;
}

/** Options for {@linkcode RoomManager}. */
export interface RoomManagerOptions {
  /** Stores history rooms' messages and carries every room's to other instances. */
  broker: Broker;
  /**
   * History rooms' settings; history needs the broker's store too.
   * @default no room has history
   */
  history?: RoomHistoryOptions;
  /** @default systemClock */
  clock?: Clock;
  /** Called when the bus fails to unsubscribe (logged by the caller). */
  onBusError?: (err: unknown, room: string) => void;
  /** Called when a history room lost messages for good (no longer in the store). */
  onHistoryGap?: (room: string, missing: number) => void;
  /** Called when reading the history store fails in the background (it is retried). */
  onHistoryError?: (err: unknown, room: string) => void;
  /** Told of each message published here, once it is delivered (or stored), not of duplicates. */
  onPublished?: (room: string, frame: string) => void;
  /** Told of each member added to or removed from a room here. */
  onMembership?: (change: MembershipChange) => void;
}

/** A member joined or left a room on this isolate. */
export interface MembershipChange {
  readonly room: string;
  readonly member: Member;
  /** True when it joined, false when it left. */
  readonly joined: boolean;
  /** The room's members on this isolate after the change. */
  readonly members: number;
}

/** Options for {@linkcode RoomManager.publish}. */
export interface PublishOptions {
  /** History rooms: the idempotency key (user, room and request id, built by the caller). */
  dedupeKey?: string;
}

/** What a publish did. */
export interface PublishOutcome {
  /** Local members it was (or, in a history room, is being) delivered to. */
  recipients: number;
  /** History rooms: the message's offset and epoch. */
  position?: StreamPosition;
  /** History rooms: the dedupe key was seen; nothing was delivered again. */
  duplicate?: boolean;
}

/** Options for {@linkcode RoomManager.join}. */
export interface JoinOptions {
  /** History rooms: recover what was missed after this position. */
  since?: StreamPosition;
  /**
   * Called once the member is in, before any frame of the room reaches it:
   * the place to send `joined`. History rooms pass the stream position.
   */
  onJoined?: (join: StreamJoin | null) => void;
}

/** Counts for `/healthz` and metrics. */
export interface HistoryStats {
  /** History rooms with local members. */
  rooms: number;
  /** Messages lost for good (gone from the store before this instance delivered them). */
  gaps: number;
}

interface RoomState {
  members: Set<Member>;
  /** Resolves when the bus delivers this room's envelopes from other instances. */
  ready: Promise<void>;
  /** Joins waiting for `ready`; the room is not dropped while any wait. */
  pending: number;
  /** Set for history rooms. */
  stream: RoomStream | null;
  /** Messages delivered here since the room was created (for the admin page's busiest rooms). */
  messages: number;
}

/** One room's figures on this isolate, from {@linkcode RoomManager.activity}. */
export interface RoomActivity {
  room: string;
  /** Local members. */
  members: number;
  /** Messages delivered to the room's local members since it was created on this isolate. */
  messages: number;
}

/**
 * Rooms of this isolate. A room exists while it has members (or joins in
 * flight) and is deleted with its last member, bus subscription included.
 */
export class RoomManager {
  readonly #rooms = new Map<string, RoomState>();
  readonly #broker: Broker;
  readonly #history: RoomHistoryOptions | undefined;
  readonly #clock: Clock;
  readonly #onBusError: (err: unknown, room: string) => void;
  readonly #onHistoryGap: (room: string, missing: number) => void;
  readonly #onHistoryError: (err: unknown, room: string) => void;
  readonly #onPublished: (room: string, frame: string) => void;
  readonly #onMembership: (change: MembershipChange) => void;
  readonly #system = new Map<string, SystemHandler>();
  #historyGaps = 0;

  /** @param options the broker, history settings and hooks */
  constructor(options: RoomManagerOptions) {
    this.#broker = options.broker;
    this.#history = options.broker.history === undefined ? undefined : options.history;
    this.#clock = options.clock ?? systemClock;
    this.#onBusError = options.onBusError ?? (() => {});
    this.#onHistoryGap = options.onHistoryGap ?? (() => {});
    this.#onHistoryError = options.onHistoryError ?? (() => {});
    this.#onPublished = options.onPublished ?? (() => {});
    this.#onMembership = options.onMembership ?? (() => {});
    this.#broker.onDelivery((envelope) => this.#receive(envelope));
    this.#broker.onHead((room, position) => {
      this.#rooms.get(room)?.stream?.headMoved(position);
    });
    this.#broker.onReconnect(() => {
      for (const state of this.#rooms.values()) state.stream?.resync();
    });
  }

  /**
   * Routes the system envelopes of `kind` (published with
   * `broker.publish(room, payload, { kind })`) to `handler` instead of members.
   * One handler per kind; envelopes of a kind nobody handles are ignored.
   */
  onSystem(kind: string, handler: SystemHandler): void {
    this.#system.set(kind, handler);
  }

  /** Rooms with at least one member or join in flight. */
  get size(): number {
    return this.#rooms.size;
  }

  /** History figures. */
  get historyStats(): HistoryStats {
    let rooms = 0;
    for (const state of this.#rooms.values()) if (state.stream !== null) rooms++;
    return { rooms, gaps: this.#historyGaps };
  }

  /**
   * Every room of this isolate with its figures. The message count lives and
   * dies with the room, so it costs one increment per message (not per
   * recipient) and no memory for rooms that are gone.
   */
  *activity(): IterableIterator<RoomActivity> {
    for (const [room, state] of this.#rooms) {
      yield { room, members: state.members.size, messages: state.messages };
    }
  }

  /** The position delivered so far in a joined history room on this instance. */
  streamPosition(room: string): StreamPosition | undefined {
    return this.#rooms.get(room)?.stream?.position;
  }

  /** A room's history limits, or `null` when it keeps none. */
  historyLimits(room: string): HistoryLimits | null {
    return this.#history?.limitsFor(room) ?? null;
  }

  /**
   * Adds `member` once the room's bus subscription is in place (and, for a
   * history room, its stream position is known), so that anything published
   * anywhere after this resolves reaches the member. Rejects (and adds
   * nothing) when the bus cannot subscribe or the history store cannot be
   * reached ({@linkcode StoreUnavailableError}).
   *
   * @throws {ReplayInterruptedError} when a recovery began but could not
   * finish; the member is no longer in the room.
   */
  async join(room: string, member: Member, options: JoinOptions = {}): Promise<void> {
    let state = this.#rooms.get(room);
    if (state === undefined) {
      state = this.#open(room);
      this.#rooms.set(room, state);
    }
    if (state.members.has(member)) return;
    state.pending++;
    try {
      await state.ready;
    } catch (err) {
      state.pending--;
      this.#dropIfEmpty(room, state);
      throw err;
    }
    state.members.add(member);
    state.pending--;
    this.#onMembership({ room, member, joined: true, members: state.members.size });
    const stream = state.stream;
    if (stream === null) {
      options.onJoined?.(null);
      return;
    }
    try {
      await stream.add(member, options.since, (join) => options.onJoined?.(join));
    } catch (err) {
      this.leave(room, member);
      throw err;
    }
  }

  #open(room: string): RoomState {
    const limits = this.historyLimits(room);
    const history = this.#history;
    const store = this.#broker.history;
    const stream = limits === null || history === undefined || store === undefined
      ? null
      : new RoomStream(room, {
        store,
        limits,
        clock: this.#clock,
        ...(history.gapWaitMs === undefined ? {} : { gapWaitMs: history.gapWaitMs }),
        ...(history.maxHeldBytes === undefined ? {} : { maxHeldBytes: history.maxHeldBytes }),
        onGap: (missing) => {
          this.#historyGaps += missing;
          this.#onHistoryGap(room, missing);
        },
        onError: (err) => this.#onHistoryError(err, room),
      });
    const state: RoomState = {
      members: new Set(),
      ready: Promise.resolve(),
      pending: 0,
      stream,
      messages: 0,
    };
    state.ready = this.#broker.subscribe(room, stream === null ? null : limits)
      .then(() => stream?.open());
    return state;
  }

  /** Removes `member`; the last one out deletes the room. Returns whether it was a member. */
  leave(room: string, member: Member): boolean {
    const state = this.#rooms.get(room);
    if (state === undefined || !state.members.delete(member)) return false;
    this.#onMembership({ room, member, joined: false, members: state.members.size });
    state.stream?.remove(member);
    this.#dropIfEmpty(room, state);
    return true;
  }

  #dropIfEmpty(room: string, state: RoomState): void {
    if (state.members.size > 0 || state.pending > 0 || this.#rooms.get(room) !== state) return;
    this.#rooms.delete(room);
    state.stream?.close();
    // Unsubscribing a room whose subscribe failed is harmless: buses ignore unknown rooms.
    this.#broker.unsubscribe(room).catch((err) => this.#onBusError(err, room));
  }

  /**
   * Publishes a serialized `message` frame. A room without history: delivered
   * to local members and handed to the broker at once (synchronous). A
   * history room: stored and fanned out by the broker, then delivered in
   * offset order (a promise).
   *
   * @throws {MessageTooLargeError} when the bus cannot carry the frame;
   * nothing is delivered anywhere then, so every instance sees the same.
   * @throws {StoreUnavailableError} (history rooms, as a rejection) when the
   * store or the bus that must carry the message is down: nothing was stored.
   */
  publish(
    room: string,
    frame: string,
    options: PublishOptions = {},
  ): PublishOutcome | Promise<PublishOutcome> {
    if (!this.#broker.fits(room, frame)) {
      throw new MessageTooLargeError(this.#broker.maxEnvelopeBytes);
    }
    const limits = this.historyLimits(room);
    if (limits === null || this.#history === undefined) {
      const recipients = this.deliverLocal(room, frame);
      this.#broker.publish(room, frame);
      this.#onPublished(room, frame);
      return { recipients };
    }
    return this.#publishStored(room, frame, limits, this.#history, options.dedupeKey);
  }

  async #publishStored(
    room: string,
    frame: string,
    limits: HistoryLimits,
    history: RoomHistoryOptions,
    dedupeKey: string | undefined,
  ): Promise<PublishOutcome> {
    const result = await this.#broker.publishStored(room, frame, {
      limits,
      ...(dedupeKey === undefined ? {} : {
        dedupe: { key: dedupeKey, windowMs: history.dedupeWindowMs },
      }),
    });
    const position = { offset: result.offset, epoch: result.epoch };
    if (result.duplicate) return { recipients: 0, position, duplicate: true };
    const state = this.#rooms.get(room);
    if (state !== undefined) state.messages++;
    state?.stream?.accept(position, frame);
    this.#onPublished(room, frame);
    return { recipients: state?.members.size ?? 0, position, duplicate: false };
  }

  #receive(envelope: Envelope): void {
    if (envelope.kind !== undefined) {
      this.#system.get(envelope.kind)?.(envelope);
      return;
    }
    const state = this.#rooms.get(envelope.room);
    const stream = state?.stream;
    if (stream === undefined || stream === null) {
      this.deliverLocal(envelope.room, envelope.frame);
      return;
    }
    state!.messages++;
    // The broker gives every message of a history room its position (a
    // per-isolate store numbers arrivals); one without has no place in the order.
    if (envelope.position !== undefined) stream.accept(envelope.position, envelope.frame);
  }

  /** Delivers a frame to this isolate's members of a room without history. */
  deliverLocal(room: string, frame: string): number {
    const state = this.#rooms.get(room);
    if (state === undefined) return 0;
    state.messages++;
    for (const member of state.members) member.send(frame);
    return state.members.size;
  }
}
