/**
 * Pages through a history room's stored messages for `history` requests:
 * the newest `limit` before an offset, oldest first, within a byte budget.
 *
 * @module
 */
import { utf8ByteLength, withPosition } from "../protocols/native/protocol.ts";
import type {
  HistoryEntry,
  HistoryLimits,
  HistoryStore,
  StreamPosition,
} from "../store/history/types.ts";

/** The room keeps no history; answered `bad_request`. */
export class NoHistoryError extends TypeError {
  /** @param room the room asked for */
  constructor(room: string) {
    super(`Cannot read history: room ${JSON.stringify(room)} keeps no history`);
    this.name = "NoHistoryError";
  }
}

/** One page of a room's history. */
export interface HistoryPage {
  /** Oldest first. */
  entries: HistoryEntry[];
  /** The stream's position when read. */
  position: StreamPosition;
  /** Whether older messages are still kept (page on with `before` = the first offset). */
  more: boolean;
}

/** Options for {@linkcode HistoryReader}. */
export interface HistoryReaderOptions {
  /** @default none: every room answers {@linkcode NoHistoryError} */
  store?: HistoryStore;
  /** A room's limits, or `null` for a room without history. */
  limitsFor(room: string): HistoryLimits | null;
  /** Most bytes of JSON the messages of one page may take (`HISTORY_PAGE_BYTES`). */
  pageBytes: number;
}

/** Options for {@linkcode HistoryReader.page}. */
export interface PageOptions {
  /** Most messages. */
  limit: number;
  /** Only messages with an offset below this. */
  before?: number | undefined;
}

/**
 * Reads pages of history.
 *
 * @example
 * ```ts ignore
 * const reader = new HistoryReader({ store, limitsFor: () => limits, pageBytes: 1 << 20 });
 * const { entries, more } = await reader.page("chat:1", { limit: 100 });
 * ```
 */
export class HistoryReader {
  readonly #store: HistoryStore | undefined;
  readonly #limitsFor: (room: string) => HistoryLimits | null;
  readonly #pageBytes: number;

  /** @param options store, room limits and the byte budget */
  constructor(options: HistoryReaderOptions) {
    this.#store = options.store;
    this.#limitsFor = options.limitsFor;
    this.#pageBytes = options.pageBytes;
  }

  /**
   * The newest `limit` messages before `before` (or the newest overall),
   * oldest first. When they exceed the byte budget, the newest that fit are
   * returned and `more` is true; a single message larger than the budget is
   * returned alone.
   *
   * @throws {NoHistoryError} for a room without history
   * @throws {StoreUnavailableError} when the store cannot be reached
   */
  async page(room: string, options: PageOptions): Promise<HistoryPage> {
    const limits = this.#limitsFor(room);
    if (limits === null || this.#store === undefined) throw new NoHistoryError(room);
    const { entries, position, oldest } = await this.#store.read(room, {
      limit: options.limit,
      limits,
      ...(options.before === undefined ? {} : { before: options.before }),
    });
    let budget = this.#pageBytes;
    let first = entries.length;
    while (first > 0) {
      const entry = entries[first - 1]!;
      // +1 for the comma between messages.
      const size = utf8ByteLength(withPosition(entry.frame, entry.offset, position.epoch)) + 1;
      if (size > budget) break;
      budget -= size;
      first--;
    }
    // A single message over the budget (MAX_MESSAGE_BYTES above HISTORY_PAGE_BYTES)
    // comes alone: an empty page with `more` would leave the client nowhere to page from.
    if (first === entries.length && first > 0) first--;
    const kept = first === 0 ? entries : entries.slice(first);
    const more = first > 0 || (kept.length > 0 && kept[0]!.offset > oldest);
    return { entries: kept, position, more };
  }
}
