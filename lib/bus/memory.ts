/**
 * An in-process bus: instances that share a {@linkcode MemoryHub} see each
 * other's messages; an instance with a hub of its own is a single isolated
 * node. Used for single-process deployments that want no cross-isolate
 * traffic (`BUS=memory`) and for tests.
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
  readonly maxEnvelopeBytes = 64 * 1024 * 1024;
  readonly #hub: MemoryHub;
  readonly #seq: SequenceTracker;
  #handler: EnvelopeHandler = () => {};
  #closed = false;

  /** @param options hub and instance id */
  constructor(options: MemoryBusOptions = {}) {
    this.instanceId = options.instanceId ?? crypto.randomUUID();
    this.#hub = options.hub ?? new MemoryHub();
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
    if (!this.#closed && this.#seq.accept(envelope)) this.#handler(envelope);
  }

  subscribe(_room: string): Promise<void> {
    return Promise.resolve();
  }

  unsubscribe(_room: string): Promise<void> {
    return Promise.resolve();
  }

  health(): BusHealth {
    return { status: "ok", transport: "memory", gaps: this.#seq.gaps, dropped: 0 };
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#hub.detach(this);
    return Promise.resolve();
  }
}
