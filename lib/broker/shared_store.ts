/**
 * The broker for a history store every instance sees (Redis or KV) behind a
 * bus that is not that store's own (memory, BroadcastChannel, or Redis with a
 * KV store): the message is stored first, then its position travels with the
 * envelope, and receivers deliver in offset order, filling gaps from the
 * store.
 *
 * @module
 */
import type { StreamPosition } from "../store/history/types.ts";
import { SharedBroker } from "./_base.ts";

/**
 * A {@linkcode Broker} that stores, then publishes the position on the bus.
 *
 * @example
 * ```ts ignore
 * const broker = new SharedStoreBroker({ bus, history: kvHistoryStore });
 * ```
 */
export class SharedStoreBroker extends SharedBroker {
  readonly kind = "shared-store";

  protected fanOut(room: string, frame: string, position: StreamPosition): void {
    this.bus.publish(room, frame, { position });
  }
}
