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
import { errorMessage } from "../errors.ts";
import { BaseBus, type BaseBusOptions } from "./_base.ts";
import { decodeEnvelope, encodeEnvelope } from "./_codec.ts";
import { RoomFilter } from "./_rooms.ts";
import type { GapHandler } from "./_sequence.ts";
import type { Bus, BusHealth, PublishOptions } from "./types.ts";

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
export interface BroadcastChannelBusOptions extends BaseBusOptions {
  /**
   * Channel name; instances with the same name share traffic.
   *
   * @default {"realtime"}
   */
  channel?: string;
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
export class BroadcastChannelBus extends BaseBus implements Bus {
  readonly #channel: BroadcastChannel;
  readonly #rooms: RoomFilter;
  readonly #onError: (error: unknown) => void;
  readonly #testDropRate: number;
  #invalid = 0;
  #dropped = 0;
  #failure: string | undefined;
  #closing: Promise<void> | undefined;

  /** @param options channel name, instance id, size bound and hooks */
  constructor(options: BroadcastChannelBusOptions = {}) {
    const { channel = "realtime", onGap, onError = () => {}, testDropRate = 0 } = options;
    // A throw in the handler would surface as an uncaught error from the channel's event dispatch.
    super(options, { maxEnvelopeBytes: DEFAULT_MAX_ENVELOPE_BYTES, onHandlerError: onError });
    this.#onError = onError;
    this.#testDropRate = testDropRate;
    this.#rooms = new RoomFilter(this.instanceId, onGap);
    this.#channel = new BroadcastChannel(channel);
    this.#channel.addEventListener("message", (event) => this.#receive(event.data));
    this.#channel.addEventListener("messageerror", () => this.#invalid++);
  }

  /** Counters for metrics. */
  get stats(): BroadcastChannelBusStats {
    return { invalid: this.#invalid, oversize: this.oversize };
  }

  protected send(room: string, frame: string, options: PublishOptions): void {
    const envelope = this.#rooms.stamp(room, frame, options);
    if (this.#testDropRate > 0 && Math.random() < this.#testDropRate) return;
    try {
      this.#channel.postMessage(encodeEnvelope(envelope));
    } catch (err) {
      // Deno throws when its process-wide receiver is gone (see `close`):
      // this channel can no longer reach other isolates.
      this.#dropped++;
      this.#failure = errorMessage(err);
      this.#onError(err);
    }
  }

  subscribe(room: string): Promise<void> {
    return this.#rooms.subscribe(room);
  }

  unsubscribe(room: string): Promise<void> {
    return this.#rooms.unsubscribe(room);
  }

  health(): BusHealth {
    const health: BusHealth = {
      status: this.#failure === undefined ? "ok" : "degraded",
      transport: "broadcast",
      gaps: this.#rooms.gaps,
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
    this.shut();
    this.#rooms.close();
    this.#channel.close();
    // Closing the process's last channel makes Deno drop its one receiver a
    // moment later; a channel opened before then would keep the dying
    // receiver and stay deaf and mute to other isolates (postMessage throws
    // "expected i32"). Resolving after that moment lets a new bus start clean.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }

  #receive(data: unknown): void {
    if (this.closed) return;
    const envelope = decodeEnvelope(data, this.maxEnvelopeBytes);
    if (envelope === undefined) {
      this.#invalid++;
      return;
    }
    if (this.#rooms.admit(envelope)) this.deliver(envelope);
  }
}
