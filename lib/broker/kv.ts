/**
 * The broker for `BUS=kv` with the KV history store: the append is the
 * publication. Every isolate following a history room watches its head in
 * KV and reads what is new, so nothing more goes on the bus for it; rooms
 * without history travel on the KV bus's short-lived logs.
 *
 * @module
 */
import { SharedBroker } from "./_base.ts";

/**
 * A {@linkcode Broker} whose history publishes are KV appends alone.
 *
 * @example
 * ```ts ignore
 * const broker = new KvBroker({ bus: kvBus, history: kvHistoryStore });
 * ```
 */
export class KvBroker extends SharedBroker {
  readonly kind = "kv";

  protected fanOut(): void {
    // Other isolates' head watches see the append.
  }
}
