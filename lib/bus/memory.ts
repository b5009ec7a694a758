/**
 * An in-process bus: instances that share a {@linkcode MemoryHub} see each
 * other's messages; an instance with a hub of its own is a single isolated
 * node. Used for single-process deployments that want no cross-isolate
 * traffic (`BUS=memory`) and for tests. Like BroadcastChannel, every instance
 * sees every envelope (sequences are per origin) and hands on only those of
 * the rooms it subscribed to.
 *
 * @module
 */
import { fitsEnvelope } from "./_codec.ts";
import { SequenceTracker } from "./_sequence.ts";
import type { Bus, BusHealth, Envelope, EnvelopeHandler, PublishOptions } from "./types.ts";

/** Connects memory buses in one process. */
export class MemoryHub {
  readonly #buses = new Set<MemoryBus>();
  /** @internal */
  attach(bus: MemoryBus): void {
    this.#buses.add(bus);
  }
  /** @internal */
  detach(bus: MemoryBus): void {
    this.#buses.delete(bus);
  }
  /** @internal */
  send(from: MemoryBus, envelope: Envelope): void {
    for (const bus of this.#buses) if (bus !== from) bus.receive(envelope);
  }
}

/** Options for {@linkcode MemoryBus}. */
export interface MemoryBusOptions {
  /** Shared hub; omit for an isolated node. */
  hub?: MemoryHub;
  /** @default crypto.randomUUID() */
  instanceId?: string;
  /**
   * Largest envelope carried, in bytes: nothing crosses a wire, so the bound
   * only keeps the bus as strict as the transports it stands in for.
   *
   * @default {67108864}
   */
  maxEnvelopeBytes?: number;
}

/**
 * The in-process {@linkcode Bus}.
 *
 * @example
 * ```ts
 * import { MemoryBus, MemoryHub } from "./memory.ts";
 * const hub = new MemoryHub();
 * const a = new MemoryBus({ hub }), b = new MemoryBus({ hub });
 * ```
 */
export class MemoryBus implements Bus {
  readonly instanceId: string;
  readonly maxEnvelopeBytes: number;
  readonly #hub: MemoryHub;
  readonly #seq: SequenceTracker;
  readonly #rooms = new Set<string>();
  #handler: EnvelopeHandler = () => {};
  #closed = false;

  /** @param options hub, instance id and size bound */
  constructor(options: MemoryBusOptions = {}) {
    const {
      hub = new MemoryHub(),
      instanceId = crypto.randomUUID(),
      maxEnvelopeBytes = 64 * 1024 * 1024,
    } = options;
    if (!Number.isSafeInteger(maxEnvelopeBytes) || maxEnvelopeBytes < 1) {
      throw new RangeError(
        `Cannot create bus: maxEnvelopeBytes must be a positive integer, current value is ${maxEnvelopeBytes}`,
      );
    }
    this.instanceId = instanceId;
    this.maxEnvelopeBytes = maxEnvelopeBytes;
    this.#hub = hub;
    this.#seq = new SequenceTracker(this.instanceId);
    this.#hub.attach(this);
  }

  onEnvelope(handler: EnvelopeHandler): void {
    this.#handler = handler;
  }

  fits(room: string, frame: string): boolean {
    return fitsEnvelope(this.instanceId, room, frame, this.maxEnvelopeBytes);
  }

  publish(room: string, frame: string, options?: PublishOptions): void {
    if (this.#closed || !this.fits(room, frame)) return;
    this.#hub.send(this, this.#seq.stamp(room, frame, options));
  }

  /** @internal called by the hub */
  receive(envelope: Envelope): void {
    // The tracker sees every room's envelopes, or filtered ones would count as gaps.
    if (this.#closed || !this.#seq.accept(envelope) || !this.#rooms.has(envelope.room)) return;
    this.#handler(envelope);
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
    return { status: "ok", transport: "memory", gaps: this.#seq.gaps, dropped: 0 };
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#rooms.clear();
    this.#hub.detach(this);
    return Promise.resolve();
  }
}
