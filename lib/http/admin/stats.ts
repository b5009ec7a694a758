/**
 * The admin page's feed: one JSON snapshot of this isolate (what `/healthz`
 * says, every counter of {@linkcode Counters}, the busiest rooms, and the
 * figures other subsystems register as sections). Counters are cumulative;
 * the page turns successive snapshots into rates, except for room message
 * rates, which only the server can rank and so are computed here.
 *
 * This file is also imported (types only) by the browser page, so the page
 * and the server share one definition of the feed.
 *
 * @module
 */
import type { Clock } from "../../clock.ts";
import type { Counters } from "../../metrics.ts";
import type { RoomActivity } from "../../core/rooms.ts";

/** One room in a busiest-rooms list. */
export interface RoomRow {
  room: string;
  /** Local members on this isolate. */
  members: number;
  /** Messages per second delivered in the room here, over the last sampling interval. */
  perSec: number;
}

/**
 * A group of figures from one subsystem, keyed by name. The page shows every
 * section as a table without knowing it in advance.
 */
export type Section = Record<string, number | string | boolean>;

/** The base of every snapshot: what `/healthz` reports (extra fields pass through). */
export interface HealthFigures {
  status: string;
  uptimeMs: number;
  connections: number;
  rooms: number;
  instanceId: string;
  bus: { status: string; transport: string; gaps: number; dropped: number; detail?: string };
}

/** What `GET /api/admin/stats` answers. */
export interface AdminStats extends HealthFigures {
  /** Server time of the snapshot, in ms since the epoch. */
  at: number;
  /** Every plain counter of {@linkcode Counters} (cumulative since start), by field name. */
  counters: Record<string, number>;
  /** Every keyed counter of {@linkcode Counters} (`authFailures`, `refusals`, `closes`, ...). */
  keyed: Record<string, Record<string, number>>;
  /** The busiest rooms of this isolate. */
  busiest: {
    byMembers: RoomRow[];
    byRate: RoomRow[];
    /** The interval the rates were measured over; 0 on the first sample. */
    intervalMs: number;
  };
  /** Figures registered by other subsystems (history store, presence, ...), by section name. */
  sections: Record<string, Section>;
}

/** Options for {@linkcode AdminStatsSource}. */
export interface AdminStatsOptions {
  /** The `/healthz` report; its fields are the snapshot's base. */
  health: () => HealthFigures;
  counters: Counters;
  /** The rooms of this isolate (`RoomManager.activity`). */
  activity: () => Iterable<RoomActivity>;
  clock: Clock;
  /**
   * Extension point: figures of other subsystems, read at each snapshot.
   * A subsystem adds an entry here (e.g. `history: () => store.figures()`,
   * `presence: () => ({ members: n })`) and the page shows it without change.
   * @default {}
   */
  sections?: Record<string, () => Section>;
  /** How many rooms each busiest list holds. @default 10 */
  top?: number;
  /**
   * Snapshots closer together than this reuse the previous room rates, so
   * several open admin pages cost no more than one.
   * @default 900
   */
  minIntervalMs?: number;
}

/** Keeps the `n` largest rows by `key` in `list` (sorted, descending): O(n) per row. */
function keepTop(list: RoomRow[], row: RoomRow, n: number, key: (r: RoomRow) => number): void {
  const value = key(row);
  if (value <= 0 || (list.length === n && value <= key(list[n - 1]!))) return;
  let i = list.length;
  while (i > 0 && key(list[i - 1]!) < value) i--;
  list.splice(i, 0, row);
  if (list.length > n) list.pop();
}

/**
 * Builds {@linkcode AdminStats} snapshots. Room rates come from the
 * difference between two walks over the rooms, taken at most once per
 * `minIntervalMs` and only while someone asks: nothing runs when no admin
 * page is open, and the hot path only pays the per-room increment.
 *
 * @example
 * ```ts ignore
 * const source = new AdminStatsSource({ health, counters, activity: () => rooms.activity(), clock });
 * const stats = source.snapshot();
 * ```
 */
export class AdminStatsSource {
  readonly #options: Required<Omit<AdminStatsOptions, "sections">>;
  readonly #sections: Record<string, () => Section>;
  /** Room → message count at the previous walk. */
  #previous = new Map<string, number>();
  #previousAt: number | undefined;
  #busiest: AdminStats["busiest"] = { byMembers: [], byRate: [], intervalMs: 0 };

  /** @param options where the figures come from */
  constructor(options: AdminStatsOptions) {
    const { sections = {}, top = 10, minIntervalMs = 900, ...rest } = options;
    if (!Number.isInteger(top) || top < 1) {
      throw new RangeError(`Cannot rank rooms: top must be a positive integer, got ${top}`);
    }
    this.#options = { ...rest, top, minIntervalMs };
    this.#sections = sections;
  }

  /** One snapshot, as served by `GET /api/admin/stats`. */
  snapshot(): AdminStats {
    const { health, counters, clock } = this.#options;
    const at = clock.now();
    const plain: Record<string, number> = {};
    const keyed: Record<string, Record<string, number>> = {};
    // Every field, so a counter added to Counters reaches the page without a change here.
    for (const [name, value] of Object.entries(counters)) {
      if (typeof value === "number") plain[name] = value;
      else if (value instanceof Map) keyed[name] = Object.fromEntries(value);
    }
    const sections: Record<string, Section> = {};
    for (const [name, read] of Object.entries(this.#sections)) sections[name] = read();
    return { ...health(), at, counters: plain, keyed, busiest: this.#rank(at), sections };
  }

  #rank(now: number): AdminStats["busiest"] {
    const { activity, top, minIntervalMs } = this.#options;
    if (this.#previousAt !== undefined && now - this.#previousAt < minIntervalMs) {
      return this.#busiest;
    }
    const intervalMs = this.#previousAt === undefined ? 0 : now - this.#previousAt;
    const counts = new Map<string, number>();
    const byMembers: RoomRow[] = [];
    const byRate: RoomRow[] = [];
    for (const { room, members, messages } of activity()) {
      counts.set(room, messages);
      // A room missing from the last walk is new: all its messages fall in this interval.
      // A smaller count than last time means the room was dropped and created again.
      const before = this.#previous.get(room) ?? 0;
      const delta = messages >= before ? messages - before : messages;
      const perSec = intervalMs > 0 ? Math.round((delta * 1000 / intervalMs) * 10) / 10 : 0;
      const row = { room, members, perSec };
      keepTop(byMembers, row, top, (r) => r.members);
      keepTop(byRate, row, top, (r) => r.perSec);
    }
    this.#previous = counts;
    this.#previousAt = now;
    this.#busiest = { byMembers, byRate, intervalMs };
    return this.#busiest;
  }
}
