/**
 * What `/healthz` and the admin feed report: the bus, the history store, the
 * worst of the shared-state stores, and this isolate's counts. The public
 * view drops every `detail` (backends' error texts name their addresses).
 *
 * @module
 */
import type { Bus, BusHealth } from "../bus/types.ts";
import type { Clock } from "../clock.ts";
import type { StoreKind } from "../config.ts";
import type { RoomManager } from "../core/rooms.ts";
import type { HistoryStore } from "../store/history/types.ts";
import type { StoreHealth } from "../store/types.ts";
import type { PresenceStore } from "../store/presence/types.ts";
import type { RevocationStore } from "../store/revocations/types.ts";
import type { TicketStore } from "../store/tickets/types.ts";
import type { SharedLimits } from "../core/shared_limits.ts";

/** What `/healthz` reports. */
export interface Health {
  status: "ok" | "degraded";
  uptimeMs: number;
  connections: number;
  rooms: number;
  instanceId: string;
  bus: BusHealth;
  /** The history store (rooms with history answer `unavailable` while it is degraded). */
  history: StoreHealth & { rooms: number; gaps: number };
  /**
   * The shared-state store named by `STORE` (tickets, revocations, presence,
   * and history when `HISTORY_STORE` is the same): the worst of their healths.
   */
  store: StoreHealth;
  /** Whether this server terminates TLS itself (`TLS_CERT_FILE`/`TLS_KEY_FILE`). */
  tls: boolean;
  /**
   * The limits store (`LIMITS_STORE`), when set: `degraded` while it does not
   * answer and each isolate applies its own limits.
   */
  limits?: StoreHealth;
}

/** Where {@linkcode healthReport} reads from. */
export interface HealthSources {
  clock: Clock;
  bus: Pick<Bus, "health" | "instanceId">;
  rooms: Pick<RoomManager, "size" | "historyStats">;
  historyStore: HistoryStore | undefined;
  presenceStore: PresenceStore | undefined;
  tickets: Pick<TicketStore, "health">;
  revocationStore: Pick<RevocationStore, "health">;
  /** Open connections of this isolate. */
  connections(): number;
  /** `STORE`: history counts as shared state when it lives there too. */
  storeKind: StoreKind;
  /** Whether this server terminates TLS itself. */
  tls: boolean;
  /** The limits store's state, when `LIMITS_STORE` is set. */
  sharedLimits?: Pick<SharedLimits, "health"> | undefined;
}

/**
 * `/healthz` as anyone may read it: every status, no `detail`. The error
 * texts name backends' addresses (`connect ECONNREFUSED 10.0.3.7:6379`);
 * they stay in the log and in the authenticated admin stats.
 */
export function publicHealth(health: Health): Health {
  const { detail: _bus, ...bus } = health.bus;
  const { detail: _history, ...history } = health.history;
  const { detail: _store, ...store } = health.store;
  if (health.limits === undefined) return { ...health, bus, history, store };
  const { detail: _limits, ...limits } = health.limits;
  return { ...health, bus, history, store, limits };
}

/** Builds the health report; uptime counts from this call. */
export function healthReport(sources: HealthSources): () => Health {
  const { clock, bus, rooms, historyStore, presenceStore, tickets, revocationStore } = sources;
  const startedAt = clock.now();
  return () => {
    const busHealth = bus.health();
    const storeHealth: StoreHealth = historyStore?.health() ?? { status: "ok", transport: "none" };
    const shared = [tickets.health(), revocationStore.health()];
    if (presenceStore !== undefined) shared.push(presenceStore.health());
    if (historyStore !== undefined && historyStore.kind === sources.storeKind) {
      shared.push(storeHealth);
    }
    const store = shared.find((h) => h.status !== "ok") ??
      { status: "ok", transport: sources.storeKind };
    const limits = sources.sharedLimits?.health();
    const healths = [busHealth, storeHealth, store, ...(limits === undefined ? [] : [limits])];
    return {
      status: healths.every((h) => h.status === "ok") ? "ok" : "degraded",
      uptimeMs: clock.now() - startedAt,
      connections: sources.connections(),
      rooms: rooms.size,
      instanceId: bus.instanceId,
      bus: busHealth,
      history: { ...storeHealth, ...rooms.historyStats },
      store,
      tls: sources.tls,
      ...(limits === undefined ? {} : { limits }),
    };
  };
}
