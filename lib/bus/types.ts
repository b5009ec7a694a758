/**
 * The bus carries room traffic between instances (isolates, processes,
 * machines). One interface; one file per transport.
 *
 * @module
 */
import type { StreamPosition } from "../store/history/types.ts";

/** A room message travelling between instances. */
export interface Envelope {
  /** Id of the instance that published it; an instance ignores its own envelopes. */
  origin: string;
  /**
   * Sequence number, starting at 1, so receivers can detect loss: per origin,
   * or per origin and room on transports that deliver only subscribed rooms.
   */
  seq: number;
  /**
   * Which per-room stream `seq` counts in, on transports with per-room
   * sequences: a publisher that forgot a room's counter restarts it at 1 under
   * a higher epoch, which receivers treat as a restart rather than duplicates.
   */
  epoch?: number;
  /** Room the message belongs to. */
  room: string;
  /**
   * The `message` frame exactly as members receive it (already serialized
   * once); for history rooms without `offset` and `epoch`, which `position`
   * carries; for system envelopes, the subsystem's own payload.
   */
  frame: string;
  /**
   * Set for system traffic (presence, revocation) that is handed to the
   * subsystem registered for this kind instead of being delivered to members.
   */
  kind?: string;
  /**
   * The message's place in its room's stream, for history rooms on a shared
   * store: receivers deliver in offset order and fill gaps from the store.
   */
  position?: StreamPosition;
}

/** Extra fields for {@linkcode Bus.publish}. */
export interface PublishOptions {
  /** See {@linkcode Envelope.kind}. */
  kind?: string;
  /** See {@linkcode Envelope.position}. */
  position?: StreamPosition;
}

/** Health of a bus transport, as reported by `/healthz`. */
export interface BusHealth {
  /** `degraded` while the transport is down: local delivery goes on, remote does not. */
  status: "ok" | "degraded";
  /** Transport name: `memory`, `broadcast`, `redis`, `kv`. */
  transport: string;
  /** Envelopes whose sequence numbers showed a gap since start. */
  gaps: number;
  /**
   * Envelopes this instance could not hand to the transport since start
   * (down, or too slow): not numbered, so they never show as gaps elsewhere.
   */
  dropped: number;
  /** Last failure, if the transport is degraded. */
  detail?: string;
}

/** Receives envelopes that other instances published. */
export type EnvelopeHandler = (envelope: Envelope) => void;

/**
 * A transport for room traffic between instances.
 *
 * Contract (tests/_bus_contract.ts runs it against every transport):
 * - `publish` never delivers to this instance's own handler, except
 *   envelopes that carry a `position` (a shared store may publish on our
 *   behalf, and receivers deduplicate by offset); other instances get each
 *   envelope once, with `room`, `frame`, `kind` and `position` as published.
 * - `subscribe(room)` resolves once envelopes for `room` published afterwards
 *   by any instance will reach the handler; transports that broadcast
 *   everything may resolve at once. Only subscribed rooms are delivered.
 * - One publisher's envelopes in one room arrive in publish order, with `seq`
 *   rising within one `epoch`.
 * - A closed bus drops what it is asked to publish, hands nothing more to its
 *   handler, and its `subscribe`/`unsubscribe` resolve without effect.
 */
export interface Bus {
  /** Random id of this instance (also sent to clients in `welcome`). */
  readonly instanceId: string;
  /** Largest serialized envelope the transport carries, in bytes. */
  readonly maxEnvelopeBytes: number;
  /** Sets the one handler for envelopes from other instances. */
  onEnvelope(handler: EnvelopeHandler): void;
  /**
   * Whether `publish` would carry this frame: its envelope, header included,
   * is within `maxEnvelopeBytes`. Callers ask first, so that a message too
   * large for the bus is refused to its sender rather than delivered to this
   * instance only.
   */
  fits(room: string, frame: string): boolean;
  /**
   * Sends a room frame to the other instances, stamping it with this
   * instance's `origin` and next `seq`. Must not throw for transport faults
   * (they show in {@linkcode Bus.health}); a frame that does not
   * {@linkcode Bus.fits} is dropped before it uses a sequence number, so no
   * receiver counts it as a gap (transports with metrics count it there).
   */
  publish(room: string, frame: string, options?: PublishOptions): void;
  /** Starts receiving a room's envelopes (called on the first local join). */
  subscribe(room: string): Promise<void>;
  /**
   * Stops receiving a room's envelopes (called when the last local member
   * leaves); what was published meanwhile is not loss and shows as no gap.
   */
  unsubscribe(room: string): Promise<void>;
  /**
   * Optional, for transports that can lose envelopes while disconnected
   * (Redis): `handler` runs each time the transport is back and subscribed
   * again after an outage, so history rooms can read what they missed.
   */
  onReconnect?(handler: () => void): void;
  /** Current health. */
  health(): BusHealth;
  /** Releases every resource; idempotent. */
  close(): Promise<void>;
}

/**
 * What system traffic (presence, revocations, liveness heartbeats) uses of
 * the bus: a {@linkcode Bus} has it, and so does a broker (lib/broker/),
 * through which the server sends it.
 */
export type SystemChannel = Pick<
  Bus,
  "instanceId" | "maxEnvelopeBytes" | "fits" | "publish" | "subscribe" | "unsubscribe"
>;
