/**
 * The broker: what the core talks to for room traffic. It owns storing and
 * fanning out together, so that "a message exists once it has an offset"
 * and "every instance hears of it" are one step, whichever backend holds the
 * history and whichever bus carries it. One interface; one file per
 * strategy, each made of a bus (lib/bus/) and, for history rooms, a history
 * store (lib/store/history/):
 *
 * - `per_isolate.ts`: the history store is this isolate's own (memory); each
 *   instance numbers what it delivers, so arrivals are appended here first.
 * - `shared_store.ts`: one history store for every instance (Redis or KV)
 *   behind another bus; the bus carries each message's position.
 * - `redis.ts`: the Redis history script stores and publishes in one step.
 * - `kv.ts`: the KV append is the publication; other isolates see it in
 *   their head watch.
 *
 * Which bus and store make which broker is one table (`table.ts`).
 *
 * @module
 */
import type { BusHealth, Envelope } from "../bus/types.ts";
import type {
  AppendOptions,
  AppendResult,
  HistoryLimits,
  HistoryStore,
  StreamPosition,
} from "../store/history/types.ts";

// The history types a broker's callers and strategies use, from here with the broker's own.
export type { AppendOptions, AppendResult, HistoryLimits, HistoryStore, StreamPosition };

/** The strategies, one per implementation file. */
export type BrokerKind = "per-isolate" | "shared-store" | "redis" | "kv";

/**
 * Receives what other instances published, ready to deliver: a room message
 * (in a history room always with its `position`), or a system envelope (with
 * `kind`) for the subsystem that handles that kind.
 */
export type DeliveryHandler = (delivery: Envelope) => void;

/** Options for {@linkcode Broker.publish}. */
export interface LiveOptions {
  /** A system envelope (presence, revocations): see {@linkcode Envelope.kind}. */
  kind?: string;
}

/**
 * Room traffic between instances, history included.
 *
 * Contract (tests/_broker_contract.ts runs it against every strategy):
 * - `publishStored` answers contiguous offsets within an epoch, one per
 *   stored message; a second publish with the same dedupe key within its
 *   window stores nothing, answers the first offset with `duplicate: true`,
 *   and nothing is delivered again anywhere.
 * - Another instance subscribed to the room gets each stored message once,
 *   with its position, and its history room delivers them in offset order.
 * - `publish` (rooms without history, system envelopes) reaches the other
 *   subscribed instances once, in publish order per publisher, never this one.
 * - A closed broker publishes nothing and delivers nothing.
 */
export interface Broker {
  /** Which strategy this is. */
  readonly kind: BrokerKind;
  /** Random id of this instance (also sent to clients in `welcome`). */
  readonly instanceId: string;
  /** Largest envelope the bus carries, in bytes. */
  readonly maxEnvelopeBytes: number;
  /**
   * Where history rooms' messages are kept, for reading (recovery, gap
   * fills, paging); `undefined` when no room keeps history.
   */
  readonly history: HistoryStore | undefined;
  /** Sets the one handler for what other instances published. */
  onDelivery(handler: DeliveryHandler): void;
  /**
   * Sets the handler told when a history room's head moved, whoever
   * appended (stores that watch heads: KV). The room then reads what it lacks.
   */
  onHead(handler: (room: string, position: StreamPosition) => void): void;
  /**
   * Sets the handler told when the bus is back after an outage (Redis), so
   * history rooms read what they missed.
   */
  onReconnect(handler: () => void): void;
  /** Whether the bus carries this frame (callers ask first, and refuse what does not fit). */
  fits(room: string, frame: string): boolean;
  /**
   * Sends a frame of a room without history (or, with `kind`, a system
   * envelope) to the other instances. Never throws for transport faults.
   */
  publish(room: string, frame: string, options?: LiveOptions): void;
  /**
   * Stores a history room's message and fans it out to every instance, as
   * one step: answers its position, or `duplicate: true` (nothing stored or
   * sent) for a dedupe key already seen.
   *
   * @throws {StoreUnavailableError} (as a rejection) when the store, or the
   * bus that must carry the message, is down: nothing was stored.
   */
  publishStored(room: string, frame: string, options: AppendOptions): Promise<AppendResult>;
  /**
   * Starts receiving a room (first local member). `limits` says the room
   * keeps history (`null`: it does not).
   */
  subscribe(room: string, limits?: HistoryLimits | null): Promise<void>;
  /** Stops receiving a room (last local member left). */
  unsubscribe(room: string): Promise<void>;
  /** The bus's health (the history store reports its own). */
  health(): BusHealth;
  /** Closes the bus, then the history store; idempotent. */
  close(): Promise<void>;
}
