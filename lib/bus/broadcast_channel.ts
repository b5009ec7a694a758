/**
 * The default bus: a `BroadcastChannel`. It connects Workers of one process,
 * the isolates of `deno serve --parallel`, and the isolates and regions of a
 * Deno Deploy app; it does not connect separate processes (use Redis there).
 *
 * Every instance receives everything posted on the channel, so subscribing
 * costs nothing and sequences are per origin; envelopes for rooms without
 * local members are dropped before they reach the room manager.
 *
 * @module
 */
import { decodeEnvelope, encodeEnvelope, fitsEnvelope } from "./_codec.ts";
import { type GapHandler, SequenceTracker } from "./_sequence.ts";
import type { Bus, BusHealth, Envelope, EnvelopeHandler, PublishOptions } from "./types.ts";

/**
 * Default envelope bound. Deno Deploy documents no size limit for
 * BroadcastChannel, yet drops oversized messages with only a log line
 * ("Dropped BroadcastChannel message because it was larger than the maximum
 * allowed size", denoland/deploy_feedback#345), and its limits page once
 * listed a 64 KB/s send rate per isolate. 64 KiB keeps one message within that
 * rate. A client message near the default `MAX_MESSAGE_BYTES` (also 64 KiB)
 * no longer fits once wrapped in its frame: raise both together.
 */
const DEFAULT_MAX_ENVELOPE_BYTES = 64 * 1024;

/** Options for {@linkcode BroadcastChannelBus}. */
export interface BroadcastChannelBusOptions {
  /**
   * Channel name; instances with the same name share traffic.
   *
   * @default {"realtime"}
   */
  channel?: string;
  /** @default crypto.randomUUID() */
  instanceId?: string;
  /**
   * Largest wire envelope sent or accepted, in bytes.
   *
   * @default {65536}
   */
  maxEnvelopeBytes?: number;
  /** Called once per detected gap (logged by the caller). */
  onGap?: GapHandler;
  /** Called when the envelope handler throws (logged by the caller); the bus goes on. */
  onError?: (error: unknown) => void;
  /**
   * Test-only fault injection (`BUS_TEST_DROP_RATE`, refused unless
   * `DENO_ENV=test`): this fraction of outgoing envelopes is numbered and then
   * not posted, as if the channel had lost it, so receivers see a gap.
   *
   * @default {0}
   */
  testDropRate?: number;
}

/** Counters beyond {@linkcode BusHealth}, for metrics. */
export interface BroadcastChannelBusStats {
  /** Messages on the channel that were not valid envelopes (or too large), ignored. */
  invalid: number;
  /** Envelopes not published because they exceeded `maxEnvelopeBytes`. */
  oversize: number;
}

/**
 * The {@linkcode Bus} over `BroadcastChannel`.
 *
 * @example
 * ```ts
 * import { BroadcastChannelBus } from "./broadcast_channel.ts";
 * const bus = new BroadcastChannelBus({ channel: "realtime" });
 * bus.onEnvelope((envelope) => console.log(envelope.room));
 * await bus.close();
 * ```
 */
export class BroadcastChannelBus implements Bus {
  readonly instanceId: string;
  readonly maxEnvelopeBytes: number;
  readonly #channel: BroadcastChannel;
  readonly #seq: SequenceTracker;
  readonly #rooms = new Set<string>();
  readonly #onError: (error: unknown) => void;
  readonly #testDropRate: number;
  #handler: EnvelopeHandler = () => {};
  #invalid = 0;
  #oversize = 0;
  #dropped = 0;
  #failure: string | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  /** @param options channel name, instance id, size bound and hooks */
  constructor(options: BroadcastChannelBusOptions = {}) {
    const {
      channel = "realtime",
      instanceId = crypto.randomUUID(),
      maxEnvelopeBytes = DEFAULT_MAX_ENVELOPE_BYTES,
      onGap,
      onError = () => {},
      testDropRate = 0,
    } = options;
    if (!Number.isSafeInteger(maxEnvelopeBytes) || maxEnvelopeBytes < 1) {
      throw new RangeError(
        `Cannot create bus: maxEnvelopeBytes must be a positive integer, current value is ${maxEnvelopeBytes}`,
      );
    }
    this.instanceId = instanceId;
    this.maxEnvelopeBytes = maxEnvelopeBytes;
    this.#onError = onError;
    this.#testDropRate = testDropRate;
    this.#seq = new SequenceTracker(instanceId, onGap);
    this.#channel = new BroadcastChannel(channel);
    this.#channel.addEventListener("message", (event) => this.#receive(event.data));
    this.#channel.addEventListener("messageerror", () => this.#invalid++);
  }

  /** Counters for metrics. */
  get stats(): BroadcastChannelBusStats {
    return { invalid: this.#invalid, oversize: this.#oversize };
  }

  onEnvelope(handler: EnvelopeHandler): void {
    this.#handler = handler;
  }

  fits(room: string, frame: string): boolean {
    return fitsEnvelope(this.instanceId, room, frame, this.maxEnvelopeBytes);
  }

  publish(room: string, frame: string, options?: PublishOptions): void {
    if (this.#closed) return;
    if (!this.fits(room, frame)) {
      this.#oversize++;
      return;
    }
    const envelope = this.#seq.stamp(room, frame, options);
    if (this.#testDropRate > 0 && Math.random() < this.#testDropRate) return;
    try {
      this.#channel.postMessage(encodeEnvelope(envelope));
    } catch (err) {
      // Deno throws when its process-wide receiver is gone (see `close`):
      // this channel can no longer reach other isolates.
      this.#dropped++;
      this.#failure = err instanceof Error ? err.message : String(err);
      this.#onError(err);
    }
  }

  subscribe(room: string): Promise<void> {
    if (!this.#closed) this.#rooms.add(room);
    return Promise.resolve();
  }

  unsubscribe(room: string): Promise<void> {
    this.#rooms.delete(room);
    return Promise.resolve();
  }

  health(): BusHealth {
    const health: BusHealth = {
      status: this.#failure === undefined ? "ok" : "degraded",
      transport: "broadcast",
      gaps: this.#seq.gaps,
      dropped: this.#dropped,
    };
    if (this.#failure !== undefined) health.detail = this.#failure;
    return health;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#rooms.clear();
    this.#channel.close();
    // Closing the process's last channel makes Deno drop its one receiver a
    // moment later; a channel opened before then would keep the dying
    // receiver and stay deaf and mute to other isolates (postMessage throws
    // "expected i32"). Resolving after that moment lets a new bus start clean.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }

  #receive(data: unknown): void {
    if (this.#closed) return;
    const envelope = decodeEnvelope(data, this.maxEnvelopeBytes);
    if (envelope === undefined) {
      this.#invalid++;
      return;
    }
    // Sequences are per origin and every instance sees every envelope, so the
    // tracker must see those of unsubscribed rooms too or it would count them as gaps.
    if (!this.#seq.accept(envelope) || !this.#rooms.has(envelope.room)) return;
    this.#deliver(envelope);
  }

  #deliver(envelope: Envelope): void {
    // A throw here would surface as an uncaught error from the channel's event dispatch.
    try {
      this.#handler(envelope);
    } catch (err) {
      this.#onError(err);
    }
  }
}
