/**
 * Room membership for this isolate, and the fan-out of room messages to local
 * members and, through the bus, to other instances.
 *
 * @module
 */
import type { Bus, Envelope } from "./bus/types.ts";

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
  /** Sends one serialized frame; must not throw. */
  send(frame: string): void;
}

interface RoomState {
  members: Set<Member>;
  /** Resolves when the bus delivers this room's envelopes from other instances. */
  ready: Promise<void>;
  /** Joins waiting for `ready`; the room is not dropped while any wait. */
  pending: number;
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

/** Receives the system envelopes of one kind (see {@linkcode RoomManager.onSystem}). */
export type SystemHandler = (envelope: Envelope) => void;

/** Options for {@linkcode RoomManager}. */
export interface RoomManagerOptions {
  /** Carries messages to other instances. */
  bus: Bus;
  /** Called when the bus fails to unsubscribe (logged by the caller). */
  onBusError?: (err: unknown, room: string) => void;
}

/**
 * Rooms of this isolate. A room exists while it has members (or joins in
 * flight) and is deleted with its last member, bus subscription included.
 */
export class RoomManager {
  readonly #rooms = new Map<string, RoomState>();
  readonly #bus: Bus;
  readonly #onBusError: (err: unknown, room: string) => void;
  readonly #system = new Map<string, SystemHandler>();

  /** @param options the bus and an error hook */
  constructor(options: RoomManagerOptions) {
    this.#bus = options.bus;
    this.#onBusError = options.onBusError ?? (() => {});
    this.#bus.onEnvelope((envelope) => this.#receive(envelope));
  }

  /**
   * Routes the bus's system envelopes of `kind` (published with
   * `bus.publish(room, payload, { kind })`) to `handler` instead of members.
   * One handler per kind; envelopes of a kind nobody handles are ignored.
   */
  onSystem(kind: string, handler: SystemHandler): void {
    this.#system.set(kind, handler);
  }

  #receive(envelope: Envelope): void {
    if (envelope.kind !== undefined) {
      this.#system.get(envelope.kind)?.(envelope);
      return;
    }
    this.deliverLocal(envelope.room, envelope.frame);
  }

  /** Rooms with at least one member or join in flight. */
  get size(): number {
    return this.#rooms.size;
  }

  /** Local members of a room. */
  memberCount(room: string): number {
    return this.#rooms.get(room)?.members.size ?? 0;
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

  /**
   * Adds `member` once the room's bus subscription is in place, so that
   * anything published anywhere after this resolves reaches the member.
   * Rejects (and adds nothing) when the bus cannot subscribe.
   */
  async join(room: string, member: Member): Promise<void> {
    let state = this.#rooms.get(room);
    if (state === undefined) {
      state = { members: new Set(), ready: this.#bus.subscribe(room), pending: 0, messages: 0 };
      this.#rooms.set(room, state);
    }
    if (state.members.has(member)) return;
    state.pending++;
    try {
      await state.ready;
    } catch (err) {
      state.pending--;
      this.#dropIfEmpty(room, state, false);
      throw err;
    }
    state.pending--;
    state.members.add(member);
  }

  /** Removes `member`; the last one out deletes the room. Returns whether it was a member. */
  leave(room: string, member: Member): boolean {
    const state = this.#rooms.get(room);
    if (state === undefined || !state.members.delete(member)) return false;
    this.#dropIfEmpty(room, state, true);
    return true;
  }

  #dropIfEmpty(room: string, state: RoomState, subscribed: boolean): void {
    if (state.members.size > 0 || state.pending > 0 || this.#rooms.get(room) !== state) return;
    this.#rooms.delete(room);
    if (subscribed) this.#bus.unsubscribe(room).catch((err) => this.#onBusError(err, room));
  }

  /**
   * Delivers a serialized frame to local members and hands it to the bus for
   * the other instances. Returns the number of local recipients.
   *
   * @throws {MessageTooLargeError} when the bus cannot carry the frame;
   * nothing is delivered anywhere then, so every instance sees the same.
   */
  publish(room: string, frame: string): number {
    if (!this.#bus.fits(room, frame)) throw new MessageTooLargeError(this.#bus.maxEnvelopeBytes);
    const delivered = this.deliverLocal(room, frame);
    this.#bus.publish(room, frame);
    return delivered;
  }

  /** Delivers a frame to this isolate's members only. */
  deliverLocal(room: string, frame: string): number {
    const state = this.#rooms.get(room);
    if (state === undefined) return 0;
    state.messages++;
    for (const member of state.members) member.send(frame);
    return state.members.size;
  }
}
