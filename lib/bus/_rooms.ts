/**
 * The room filter of the transports that hand every envelope to every
 * instance (memory, BroadcastChannel): sequences are per origin, so the
 * tracker must see the envelopes of every room, or those of rooms without
 * local members would count as gaps; only then are envelopes of rooms this
 * instance did not subscribe to dropped.
 *
 * @module
 */
import { type GapHandler, SequenceTracker } from "./_sequence.ts";
import type { Envelope, PublishOptions } from "./types.ts";

/**
 * The subscribed rooms and per-origin sequences of a transport that sees
 * every envelope.
 *
 * @example
 * ```ts
 * import { RoomFilter } from "./_rooms.ts";
 * const rooms = new RoomFilter("instance-1");
 * await rooms.subscribe("lobby");
 * const envelope = { origin: "instance-2", seq: 1, room: "lobby", frame: "{}" };
 * console.assert(rooms.admit(envelope));
 * ```
 */
export class RoomFilter {
  readonly #seq: SequenceTracker;
  readonly #rooms = new Set<string>();
  #closed = false;

  /**
   * @param instanceId this instance's id (its own envelopes are not admitted)
   * @param onGap called once per detected gap
   */
  constructor(instanceId: string, onGap?: GapHandler) {
    this.#seq = new SequenceTracker(instanceId, onGap);
  }

  /** Envelopes lost since start, summed over every origin. */
  get gaps(): number {
    return this.#seq.gaps;
  }

  /** The next outgoing envelope, numbered in this instance's one sequence. */
  stamp(room: string, frame: string, options: PublishOptions): Envelope {
    return this.#seq.stamp(room, frame, options);
  }

  /**
   * Records an incoming envelope in its origin's sequence and says whether to
   * hand it on: not ours, not a duplicate, of a subscribed room, not closed.
   */
  admit(envelope: Envelope): boolean {
    return !this.#closed && this.#seq.accept(envelope) && this.#rooms.has(envelope.room);
  }

  /** Admits the room's envelopes from now on; nothing to wait for. */
  subscribe(room: string): Promise<void> {
    if (!this.#closed) this.#rooms.add(room);
    return Promise.resolve();
  }

  /** Stops admitting the room's envelopes. */
  unsubscribe(room: string): Promise<void> {
    this.#rooms.delete(room);
    return Promise.resolve();
  }

  /** Forgets every room and admits nothing more. */
  close(): void {
    this.#closed = true;
    this.#rooms.clear();
  }
}
