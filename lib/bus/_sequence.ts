/**
 * Sequence bookkeeping shared by the bus transports: stamps outgoing
 * envelopes and counts gaps in incoming ones.
 *
 * A sequence is either per origin (transports that hand every envelope to
 * every instance: memory, BroadcastChannel) or per origin and room (Redis,
 * where an instance receives only the rooms it subscribes to, so one
 * per-origin counter would show every other room's traffic as a gap).
 *
 * Per-room counters live in a bounded map; a room whose counter was dropped
 * starts a new stream with a higher `epoch` at `seq` 1, which receivers
 * recognise as a restart instead of a run of duplicates.
 *
 * @module
 */
import type { Envelope, PublishOptions } from "./types.ts";

/** Most origins remembered per stream; the oldest is forgotten past this, so a churn of instances cannot grow memory. */
const MAX_ORIGINS = 1024;
/** Most rooms with a publish counter or a receive record; the oldest is forgotten past this. */
const MAX_ROOMS = 65_536;

/** What one sequence counts. */
export type SequenceScope = "origin" | "room";

/** Called once per detected gap with how many envelopes are missing and the room it showed in. */
export type GapHandler = (origin: string, missing: number, room: string) => void;

/** Options for {@linkcode SequenceTracker}. */
export interface SequenceTrackerOptions {
  /**
   * `origin`: one counter per instance; `room`: one per instance and room,
   * for transports that deliver only subscribed rooms.
   *
   * @default {"origin"}
   */
  scope?: SequenceScope;
}

interface Counter {
  epoch: number;
  next: number;
}

interface Seen {
  epoch: number;
  seq: number;
}

/** Stamps envelopes for one origin and detects loss from the others. */
export class SequenceTracker {
  #next = 1;
  #epochs = 0;
  readonly #counters = new Map<string, Counter>();
  /** Stream key (room, or "" per origin) → origin → last envelope seen. */
  readonly #seen = new Map<string, Map<string, Seen>>();
  #gaps = 0;
  readonly #origin: string;
  readonly #onGap: GapHandler;
  readonly #scope: SequenceScope;

  /**
   * @param origin this instance's id
   * @param onGap called once per detected gap with how many envelopes are missing
   * @param options sequence scope
   */
  constructor(origin: string, onGap: GapHandler = () => {}, options: SequenceTrackerOptions = {}) {
    const { scope = "origin" } = options;
    this.#origin = origin;
    this.#onGap = onGap;
    this.#scope = scope;
  }

  /** Envelopes lost since start, summed over every origin. */
  get gaps(): number {
    return this.#gaps;
  }

  /** Builds the next outgoing envelope. */
  stamp(room: string, frame: string, options: PublishOptions = {}): Envelope {
    const envelope = this.#stamp(room, frame);
    if (options.kind !== undefined) envelope.kind = options.kind;
    if (options.position !== undefined) envelope.position = options.position;
    return envelope;
  }

  #stamp(room: string, frame: string): Envelope {
    if (this.#scope === "origin") return { origin: this.#origin, seq: this.#next++, room, frame };
    let counter = this.#counters.get(room);
    if (counter === undefined) {
      counter = { epoch: ++this.#epochs, next: 1 };
      if (this.#counters.size >= MAX_ROOMS) this.#dropOldest(this.#counters);
    } else {
      // Re-inserting keeps the map in least-recently-published order, so the
      // counter dropped at the bound is the one least likely to be missed.
      this.#counters.delete(room);
    }
    this.#counters.set(room, counter);
    return { origin: this.#origin, seq: counter.next++, epoch: counter.epoch, room, frame };
  }

  /**
   * Records an incoming envelope. Returns false for our own envelopes and for
   * duplicates or reordered late arrivals, which must not be delivered again.
   */
  accept(envelope: Envelope): boolean {
    if (envelope.origin === this.#origin) return false;
    const key = this.#scope === "room" ? envelope.room : "";
    const epoch = envelope.epoch ?? 0;
    let origins = this.#seen.get(key);
    const last = origins?.get(envelope.origin);
    if (last !== undefined) {
      if (epoch < last.epoch) return false;
      if (epoch === last.epoch) {
        if (envelope.seq <= last.seq) return false;
        this.#gap(envelope, envelope.seq - last.seq - 1);
      } else {
        // A new stream from an origin we were following: its first envelopes
        // should have reached us too.
        this.#gap(envelope, envelope.seq - 1);
      }
      last.epoch = epoch;
      last.seq = envelope.seq;
      return true;
    }
    if (origins === undefined) {
      if (this.#seen.size >= MAX_ROOMS) this.#dropOldest(this.#seen);
      origins = new Map();
      this.#seen.set(key, origins);
    }
    if (origins.size >= MAX_ORIGINS) this.#dropOldest(origins);
    origins.set(envelope.origin, { epoch, seq: envelope.seq });
    return true;
  }

  /**
   * Forgets what was received in `room` (per-room scope only). Call on
   * unsubscribe: envelopes published while unsubscribed were never meant to
   * arrive, so they must not count as a gap after the next subscribe.
   */
  forget(room: string): void {
    if (this.#scope === "room") this.#seen.delete(room);
  }

  #gap(envelope: Envelope, missing: number): void {
    if (missing <= 0) return;
    this.#gaps += missing;
    this.#onGap(envelope.origin, missing, envelope.room);
  }

  #dropOldest(map: Map<string, unknown>): void {
    const oldest = map.keys().next();
    if (oldest.done !== true) map.delete(oldest.value);
  }
}

/** True when a value received from a transport has the shape of an {@linkcode Envelope}. */
export function isEnvelope(value: unknown): value is Envelope {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.origin === "string" && isSeq(v.seq) && typeof v.room === "string" &&
    typeof v.frame === "string" && (v.epoch === undefined || isSeq(v.epoch)) &&
    (v.kind === undefined || typeof v.kind === "string") &&
    (v.position === undefined || isPosition(v.position));
}

function isPosition(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const p = value as Record<string, unknown>;
  return isSeq(p.offset) && typeof p.epoch === "string" && p.epoch.length > 0;
}

function isSeq(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
