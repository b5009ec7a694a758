/**
 * What every broker does the same way: live frames and system envelopes go
 * straight to the bus, subscriptions follow the rooms with local members,
 * health is the bus's, and closing releases the bus, then the store. Each
 * strategy adds how a history message is stored and fanned out
 * (`publishStored`) and how an arrival becomes a delivery (`arrived`).
 *
 * @module
 */
import type { Bus, BusHealth, Envelope } from "../bus/types.ts";
import { StoreUnavailableError } from "../store/types.ts";
import type {
  AppendOptions,
  AppendResult,
  Broker,
  BrokerKind,
  DeliveryHandler,
  HistoryLimits,
  HistoryStore,
  LiveOptions,
  StreamPosition,
} from "./types.ts";

/** The parts a broker is made of. */
export interface BrokerParts<S extends HistoryStore = HistoryStore> {
  /** Carries envelopes between instances; closed by the broker. */
  bus: Bus;
  /** History rooms' store, closed by the broker; none when no room keeps history. */
  history?: S;
}

/** The shared half of every {@linkcode Broker}; see the module doc. */
export abstract class BaseBroker<S extends HistoryStore = HistoryStore> implements Broker {
  abstract readonly kind: BrokerKind;
  readonly history: S | undefined;
  protected readonly bus: Bus;
  /** Subscribed rooms that keep history, with their limits. */
  protected readonly historyRooms = new Map<string, HistoryLimits>();
  protected deliver: DeliveryHandler = () => {};
  #closed = false;

  /** @param parts the bus and the history store */
  constructor(parts: BrokerParts<S>) {
    this.bus = parts.bus;
    this.history = parts.history;
    this.bus.onEnvelope((envelope) => {
      if (envelope.kind !== undefined) this.deliver(envelope);
      else this.arrived(envelope);
    });
  }

  get instanceId(): string {
    return this.bus.instanceId;
  }

  get maxEnvelopeBytes(): number {
    return this.bus.maxEnvelopeBytes;
  }

  onDelivery(handler: DeliveryHandler): void {
    this.deliver = handler;
  }

  onHead(handler: (room: string, position: StreamPosition) => void): void {
    this.history?.onHead?.(handler);
  }

  onReconnect(handler: () => void): void {
    this.bus.onReconnect?.(handler);
  }

  fits(room: string, frame: string): boolean {
    return this.bus.fits(room, frame);
  }

  publish(room: string, frame: string, options: LiveOptions = {}): void {
    this.bus.publish(room, frame, options.kind === undefined ? undefined : { kind: options.kind });
  }

  abstract publishStored(
    room: string,
    frame: string,
    options: AppendOptions,
  ): Promise<AppendResult>;

  /** A room message from another instance (not a system envelope): deliver it, or drop it. */
  protected abstract arrived(envelope: Envelope): void;

  subscribe(room: string, limits: HistoryLimits | null = null): Promise<void> {
    if (limits !== null && this.history !== undefined) this.historyRooms.set(room, limits);
    return this.bus.subscribe(room);
  }

  unsubscribe(room: string): Promise<void> {
    this.historyRooms.delete(room);
    return this.bus.unsubscribe(room);
  }

  health(): BusHealth {
    return this.bus.health();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.bus.close();
    await this.history?.close();
  }

  /** The store itself; asking a broker without one is a programming error. */
  protected store(): S {
    if (this.history === undefined) {
      throw new TypeError("Cannot publish to history: current broker has no history store");
    }
    return this.history;
  }
}

/**
 * The shared half of the brokers whose store every instance sees (Redis,
 * KV): an arrival in a history room carries its position; one without was
 * never stored (a node configured without history) and has no place in the
 * order. Storing is refused while the bus is down: other instances' members
 * hear of a message through it, so storing would strand them.
 */
export abstract class SharedBroker<S extends HistoryStore = HistoryStore> extends BaseBroker<S> {
  async publishStored(room: string, frame: string, options: AppendOptions): Promise<AppendResult> {
    const store = this.store();
    const bus = this.busHealth(room);
    if (bus.status !== "ok") {
      throw new StoreUnavailableError(`the bus is down (${bus.detail ?? "reconnecting"})`, 1000);
    }
    const result = await this.append(store, room, frame, options);
    if (!result.duplicate) this.fanOut(room, frame, { offset: result.offset, epoch: result.epoch });
    return result;
  }

  /**
   * The bus's health as far as `room` is concerned: the whole bus's, unless
   * a bus carries rooms on separate shards (lib/broker/redis.ts).
   */
  protected busHealth(_room: string): BusHealth {
    return this.bus.health();
  }

  /** Stores the message (a store that publishes it too does both here). */
  protected append(
    store: S,
    room: string,
    frame: string,
    options: AppendOptions,
  ): Promise<AppendResult> {
    return store.append(room, frame, options);
  }

  /** Tells the other instances of a stored message, unless storing already did. */
  protected abstract fanOut(room: string, frame: string, position: StreamPosition): void;

  protected arrived(envelope: Envelope): void {
    if (this.historyRooms.has(envelope.room) && envelope.position === undefined) return;
    this.deliver(envelope);
  }
}
