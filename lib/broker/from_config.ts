/**
 * Makes the broker from its parts: the bus and the history store given (or
 * built from the configuration), matched in the combinations table
 * (`table.ts`). The only place that knows every broker.
 *
 * @module
 */
import type { Bus } from "../bus/types.ts";
import { RedisHistoryStore } from "../store/history/redis.ts";
import type { HistoryStore } from "../store/history/types.ts";
import { KvBroker } from "./kv.ts";
import { PerIsolateBroker } from "./per_isolate.ts";
import { RedisBroker } from "./redis.ts";
import { SharedStoreBroker } from "./shared_store.ts";
import { COMBINATIONS, type Transport } from "./table.ts";
import type { Broker } from "./types.ts";

/** Options for {@linkcode composeBroker}. */
export interface ComposeBrokerOptions {
  /** Called when a per-isolate broker fails to number an arrival (logged by the caller). */
  onError?: (err: unknown, room: string) => void;
}

function transportOf(bus: Bus): Transport {
  const transport = bus.health().transport;
  if (!(transport in COMBINATIONS)) {
    throw new TypeError(`Cannot compose a broker: current bus transport is ${transport}`);
  }
  return transport as Transport;
}

/**
 * The broker the table names for `bus` and `history` (none: no room keeps
 * history, and any bus makes a per-isolate broker). The broker owns both
 * parts from then on and closes them.
 *
 * @throws {TypeError} for a pair the table refuses (the configuration
 * refuses it first, at start-up)
 *
 * @example
 * ```ts ignore
 * const broker = composeBroker(await createBus(config), historyStore);
 * ```
 */
export function composeBroker(
  bus: Bus,
  history: HistoryStore | undefined,
  options: ComposeBrokerOptions = {},
): Broker {
  if (history === undefined) return new PerIsolateBroker({ bus, ...options });
  const transport = transportOf(bus);
  const { broker, gives } = COMBINATIONS[transport][history.kind];
  switch (broker) {
    case "per-isolate":
      return new PerIsolateBroker({ bus, history, ...options });
    case "shared-store":
      return new SharedStoreBroker({ bus, history });
    case "kv":
      return new KvBroker({ bus, history });
    case "redis":
      if (history instanceof RedisHistoryStore) return new RedisBroker({ bus, history });
      return new SharedStoreBroker({ bus, history });
    case null:
      throw new TypeError(
        `Cannot compose a broker: BUS=${transport} with a ${history.kind} history store is ${gives}`,
      );
  }
}
