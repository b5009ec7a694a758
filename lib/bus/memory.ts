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
import { BaseBus, type BaseBusOptions } from "./_base.ts";
import { RoomFilter } from "./_rooms.ts";
import type { Bus, BusHealth, Envelope, PublishOptions } from "./types.ts";

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
export interface MemoryBusOptions extends BaseBusOptions {
  /** Shared hub; omit for an isolated node. */
  hub?: MemoryHub;
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
export class MemoryBus extends BaseBus implements Bus {
  readonly #hub: MemoryHub;
  readonly #rooms: RoomFilter;

  /** @param options hub, instance id and size bound */
  constructor(options: MemoryBusOptions = {}) {
    super(options, {
      maxEnvelopeBytes: 64 * 1024 * 1024,
      // Nothing crosses a wire: a handler's throw reaches the publisher, as a direct call's would.
      onHandlerError: (err) => {
        throw err;
      },
    });
    const { hub = new MemoryHub() } = options;
    this.#hub = hub;
    this.#rooms = new RoomFilter(this.instanceId);
    this.#hub.attach(this);
  }

  protected send(room: string, frame: string, options: PublishOptions): void {
    this.#hub.send(this, this.#rooms.stamp(room, frame, options));
  }

  /** @internal called by the hub */
  receive(envelope: Envelope): void {
    if (this.#rooms.admit(envelope)) this.deliver(envelope);
  }

  subscribe(room: string): Promise<void> {
    return this.#rooms.subscribe(room);
  }

  unsubscribe(room: string): Promise<void> {
    return this.#rooms.unsubscribe(room);
  }

  health(): BusHealth {
    return { status: "ok", transport: "memory", gaps: this.#rooms.gaps, dropped: 0 };
  }

  close(): Promise<void> {
    this.shut();
    this.#rooms.close();
    this.#hub.detach(this);
    return Promise.resolve();
  }
}
