/**
 * What every bus transport does the same way, whatever carries its envelopes:
 * its identity and envelope bound (checked once), the one envelope handler
 * and handing envelopes to it without letting a throw escape into the
 * transport, and the gate before a publish (a closed bus drops it; a frame
 * that does not fit is counted and dropped before it uses a sequence number).
 * A transport extends {@linkcode BaseBus} and implements only `send` and its
 * subscriptions, health and close, as socket.io's cluster adapter asks its
 * transports only for `doPublish`.
 *
 * @module
 */
import { fitsEnvelope } from "./_codec.ts";
import type { Envelope, EnvelopeHandler, PublishOptions } from "./types.ts";

/** The options every transport takes. */
export interface BaseBusOptions {
  /** @default crypto.randomUUID() */
  instanceId?: string;
  /** Largest envelope carried, in bytes; each transport documents its default. */
  maxEnvelopeBytes?: number;
}

/** How a transport sets up its {@linkcode BaseBus}. */
export interface BaseBusSettings {
  /** The transport's default `maxEnvelopeBytes`. */
  maxEnvelopeBytes: number;
  /** Told when the envelope handler throws (the bus goes on). */
  onHandlerError: (error: unknown) => void;
  /**
   * What the bus is called in a constructor's `RangeError`.
   *
   * @default {"bus"}
   */
  name?: string;
}

/**
 * The part of a {@linkcode Bus} that every transport shares.
 *
 * @example
 * ```ts ignore
 * class PigeonBus extends BaseBus implements Bus {
 *   protected send(room: string, frame: string, options: PublishOptions): void {
 *     // stamp and carry the envelope
 *   }
 *   // subscribe, unsubscribe, health, close
 * }
 * ```
 */
export abstract class BaseBus {
  /** Random id of this instance (also sent to clients in `welcome`). */
  readonly instanceId: string;
  /** Largest serialized envelope the transport carries, in bytes. */
  readonly maxEnvelopeBytes: number;
  readonly #onHandlerError: (error: unknown) => void;
  #handler: EnvelopeHandler = () => {};
  #oversize = 0;
  #closed = false;

  /**
   * @param options the caller's instance id and envelope bound
   * @param settings the transport's default bound, name and handler-error hook
   */
  constructor(options: BaseBusOptions, settings: BaseBusSettings) {
    const { name = "bus", onHandlerError } = settings;
    const { instanceId = crypto.randomUUID(), maxEnvelopeBytes = settings.maxEnvelopeBytes } =
      options;
    if (!Number.isSafeInteger(maxEnvelopeBytes) || maxEnvelopeBytes < 1) {
      throw new RangeError(
        `Cannot create ${name}: maxEnvelopeBytes must be a positive integer, current value is ${maxEnvelopeBytes}`,
      );
    }
    this.instanceId = instanceId;
    this.maxEnvelopeBytes = maxEnvelopeBytes;
    this.#onHandlerError = onHandlerError;
  }

  /** Sets the one handler for envelopes from other instances. */
  onEnvelope(handler: EnvelopeHandler): void {
    this.#handler = handler;
  }

  /** Whether `publish` would carry this frame (see `Bus.fits`). */
  fits(room: string, frame: string): boolean {
    return fitsEnvelope(this.instanceId, room, frame, this.maxEnvelopeBytes);
  }

  /**
   * Hands a frame that fits to `send`; drops it on a closed bus, and counts
   * and drops one that does not fit.
   */
  publish(room: string, frame: string, options: PublishOptions = {}): void {
    if (this.#closed) return;
    if (!this.fits(room, frame)) {
      this.#oversize++;
      return;
    }
    this.send(room, frame, options);
  }

  /** Stamps and carries an envelope for a frame that fits, on an open bus. */
  protected abstract send(room: string, frame: string, options: PublishOptions): void;

  /** Frames not published because they did not fit in `maxEnvelopeBytes`. */
  protected get oversize(): number {
    return this.#oversize;
  }

  /** Whether {@linkcode BaseBus.shut} was called. */
  protected get closed(): boolean {
    return this.#closed;
  }

  /** Marks the bus closed (publishes are dropped from now on); true the first time only. */
  protected shut(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    return true;
  }

  /** Hands an envelope to the handler; a throw goes to `onHandlerError`, not the transport. */
  protected deliver(envelope: Envelope): void {
    try {
      this.#handler(envelope);
    } catch (err) {
      this.#onHandlerError(err);
    }
  }
}
