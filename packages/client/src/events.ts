/**
 * The client's lifecycle events: their names and listener signatures, and the
 * emitter that calls listeners without letting their exceptions reach the
 * client.
 *
 * @module
 */
import type { RealtimeError } from "./errors.ts";
import type { PresenceChange } from "./presence.ts";
import type { RejoinInfo } from "./room.ts";
import type { LeftReason, WelcomeInfo } from "./types.ts";

/** Listener signatures, by event name; see {@linkcode RealtimeClient.on}. */
export interface RealtimeEvents {
  /** Connected, welcomed, rooms rejoined and queued requests sent. */
  open: (info: WelcomeInfo) => void;
  /**
   * A socket closed: the server's close code and reason, 1006 for an abnormal
   * drop, or {@linkcode ClientCloseCode} values when the client dropped it.
   * Emitted on every disconnect, including those followed by a reconnect.
   */
  close: (code: number, reason: string) => void;
  /** Something failed that no request promise can report. */
  error: (error: RealtimeError) => void;
  /** The server warned that the token expires at `expiresAt` (seconds since epoch). */
  expiring: (expiresAt: number) => void;
  /** The server accepted a refreshed token; new expiry in seconds since epoch. */
  refreshed: (expiresAt: number | null) => void;
  /** A reconnect is scheduled: attempt number (from 1) and the delay before it. */
  reconnecting: (attempt: number, delayMs: number) => void;
  /** The client is no longer in `room`, and its handler was dropped. */
  left: (room: string, reason: LeftReason) => void;
  /**
   * A room was rejoined after a reconnect. In a history room joined with
   * recovery, `recovered: true` means the `missed` messages were replayed to
   * the handler (before any live one); `recovered: false` means some may be
   * lost: refetch the room's state (for example with `history`).
   */
  rejoin: (room: string, info: RejoinInfo) => void;
  /**
   * Who arrived and left in a joined presence room. The first state after a
   * join reports every member as a join; a state after a rejoin reports the
   * difference from what was known. Read the whole list with `presence(room)`.
   */
  presence: (room: string, change: PresenceChange) => void;
}

/** Name of a {@linkcode RealtimeEvents} event. */
export type RealtimeEventName = keyof RealtimeEvents;

type Listener = (...args: never[]) => void;

/** Holds listeners by event name and calls them in the order they were added. */
export class Emitter {
  readonly #listeners = new Map<RealtimeEventName, Set<Listener>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends RealtimeEventName>(event: K, listener: RealtimeEvents[K]): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) this.#listeners.set(event, set = new Set());
    const stored = listener as Listener;
    set.add(stored);
    return () => {
      set.delete(stored);
    };
  }

  /** Calls every listener of `event`; one that throws is reported and the rest still run. */
  emit<K extends RealtimeEventName>(event: K, ...args: Parameters<RealtimeEvents[K]>): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as unknown as (...a: Parameters<RealtimeEvents[K]>) => void)(...args);
      } catch (err) {
        report(err);
      }
    }
  }
}

/** Surfaces an exception from app code (a handler or listener) without breaking the client. */
export function report(error: unknown): void {
  const reportError = (globalThis as { reportError?: (error: unknown) => void }).reportError;
  if (reportError !== undefined) {
    reportError(error);
    return;
  }
  setTimeout(() => {
    throw error;
  });
}
