/**
 * Which bus and which history store make which broker: the one table of
 * valid `BUS` × `STORE`/`HISTORY_STORE` combinations, read by the
 * configuration (an invalid pair is a start-up error) and by the broker's
 * composition, and shown in the README's "Scaling out" section. Data only,
 * so the configuration can read it without loading any backend.
 *
 * @module
 */
import type { BackendKind } from "../store/types.ts";
import type { BrokerKind } from "./types.ts";

/** The bus transports (`BUS`). */
export type Transport = "memory" | "broadcast" | "redis" | "kv";
/** The store backends (`STORE`, `HISTORY_STORE`). */
export type StoreKind = BackendKind;

/** One cell of the table. */
export interface Combination {
  /** The broker this pair makes, or `null` when the pair is refused at start-up. */
  broker: BrokerKind | null;
  /** What it gives (or, when refused, why). */
  gives: string;
}

/** `BUS` × store kind. */
export const COMBINATIONS: Readonly<Record<Transport, Readonly<Record<StoreKind, Combination>>>> = {
  memory: {
    memory: { broker: "per-isolate", gives: "one isolate" },
    redis: { broker: "shared-store", gives: "one isolate, history kept in Redis" },
    kv: { broker: "shared-store", gives: "one isolate, history kept in a KV file" },
  },
  broadcast: {
    memory: { broker: "per-isolate", gives: "every core of one box, history per isolate" },
    redis: { broker: "shared-store", gives: "every core of one box, one history in Redis" },
    kv: { broker: "shared-store", gives: "every core of one box (recommended)" },
  },
  redis: {
    memory: { broker: "per-isolate", gives: "several machines, history per isolate" },
    redis: { broker: "redis", gives: "several machines (one script stores and publishes)" },
    kv: { broker: "shared-store", gives: "every core of one box sharing a KV file" },
  },
  kv: {
    memory: { broker: null, gives: "BUS=kv delivers history through KV's head watch" },
    redis: { broker: null, gives: "BUS=kv delivers history through KV's head watch" },
    kv: {
      broker: "kv",
      gives: "every core of one box without BroadcastChannel; Deno Deploy (its default)",
    },
  },
};

/** `STORE` when unset: the bus's own backend where it has one, else memory. */
export const DEFAULT_STORE: Readonly<Record<Transport, StoreKind>> = {
  memory: "memory",
  broadcast: "memory",
  redis: "redis",
  kv: "kv",
};

/** The store kinds `bus` accepts, in table order. */
export function storesFor(bus: Transport): StoreKind[] {
  return (Object.keys(COMBINATIONS[bus]) as StoreKind[])
    .filter((kind) => COMBINATIONS[bus][kind].broker !== null);
}

/** The store kinds whose data only this isolate sees. */
export function isPerIsolate(kind: StoreKind): boolean {
  return kind === "memory";
}
