/**
 * The open sessions of this isolate, counted per user, and the handshakes
 * being authenticated right now: what the connection caps are checked
 * against, what revocations walk, what shutdown closes.
 *
 * @module
 */
import type { Session } from "../protocols/native/mod.ts";

/** Options for {@linkcode Connections}. */
export interface ConnectionsOptions {
  /** Told when a user's first session here opens (`true`) and their last one ends (`false`). */
  onUser?: (userId: string, online: boolean) => void;
}

/** The open sessions, per-user counts and pending handshakes. */
export class Connections {
  /** Every open session. */
  readonly sessions: Set<Session> = new Set();
  readonly #perUser = new Map<string, number>();
  /** The user each session was counted under (a Pusher signin changes `userId` later). */
  readonly #countedAs = new Map<Session, string>();
  readonly #onUser: (userId: string, online: boolean) => void;
  #pending = 0;

  /** @param options who is told of users coming and going */
  constructor(options: ConnectionsOptions = {}) {
    this.#onUser = options.onUser ?? (() => {});
  }

  /** Open sessions. */
  get size(): number {
    return this.sessions.size;
  }

  /** Users with at least one open session. */
  get users(): number {
    return this.#perUser.size;
  }

  /** Handshakes past the cheap checks, waiting for their credential to be checked. */
  get pending(): number {
    return this.#pending;
  }

  /** Open sessions of one user. */
  countFor(userId: string): number {
    return this.#perUser.get(userId) ?? 0;
  }

  /** Runs `authenticate` counted as a pending handshake. */
  async pendingWhile<T>(authenticate: () => Promise<T>): Promise<T> {
    this.#pending++;
    try {
      return await authenticate();
    } finally {
      this.#pending--;
    }
  }

  /** Records a session that has just opened. */
  add(session: Session): void {
    this.sessions.add(session);
    this.#countedAs.set(session, session.userId);
    const count = this.countFor(session.userId) + 1;
    this.#perUser.set(session.userId, count);
    if (count === 1) this.#onUser(session.userId, true);
  }

  /** Forgets a session that has ended. */
  remove(session: Session): void {
    if (!this.sessions.delete(session)) return;
    const userId = this.#countedAs.get(session) ?? session.userId;
    this.#countedAs.delete(session);
    const left = (this.#perUser.get(userId) ?? 1) - 1;
    if (left > 0) {
      this.#perUser.set(userId, left);
      return;
    }
    this.#perUser.delete(userId);
    this.#onUser(userId, false);
  }
}
