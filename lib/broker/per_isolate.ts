/**
 * The broker for a per-isolate history store (memory, any bus): nothing is
 * shared but the bus, so each instance numbers what it delivers. A stored
 * message goes on the bus without a position; an arrival in a history room
 * is appended to this isolate's store first and delivered with the offset
 * it got here, in arrival order.
 *
 * @module
 */
import type { Envelope } from "../bus/types.ts";
import type { AppendOptions, AppendResult, HistoryStore } from "../store/history/types.ts";
import { BaseBroker, type BrokerParts } from "./_base.ts";

/** Options for {@linkcode PerIsolateBroker}. */
export interface PerIsolateBrokerOptions extends BrokerParts {
  /** Called when numbering an arrival fails (it is not delivered; logged by the caller). */
  onError?: (err: unknown, room: string) => void;
}

/**
 * A {@linkcode Broker} over any bus with this isolate's own history store
 * (or none: then it only carries live frames and system envelopes).
 *
 * @example
 * ```ts ignore
 * const broker = new PerIsolateBroker({ bus: new MemoryBus(), history: new MemoryHistoryStore() });
 * ```
 */
export class PerIsolateBroker extends BaseBroker {
  readonly kind = "per-isolate";
  readonly #onError: (err: unknown, room: string) => void;

  /** @param options the bus, the store and the error hook */
  constructor(options: PerIsolateBrokerOptions) {
    super(options);
    this.#onError = options.onError ?? (() => {});
  }

  async publishStored(room: string, frame: string, options: AppendOptions): Promise<AppendResult> {
    const result = await this.store().append(room, frame, options);
    if (!result.duplicate) this.bus.publish(room, frame);
    return result;
  }

  protected arrived(envelope: Envelope): void {
    const limits = this.historyRooms.get(envelope.room);
    const store: HistoryStore | undefined = this.history;
    if (limits === undefined || store === undefined) {
      this.deliver(envelope);
      return;
    }
    // A memory store answers in call order, so arrivals keep their order.
    store.append(envelope.room, envelope.frame, { limits }).then(
      ({ offset, epoch }) => this.deliver({ ...envelope, position: { offset, epoch } }),
      (err) => this.#onError(err, envelope.room),
    );
  }
}
