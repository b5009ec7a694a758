/**
 * Who presence shows for each of a session's memberships: the session itself
 * (its principal's user id and `info`), or, where the adapter named someone
 * else at join (Pusher's per-channel `channel_data`), that identity. The
 * events for either still reach the session.
 *
 * @module
 */
import type { PresenceInfo } from "./auth.ts";
import type { PresenceMember } from "./presence/mod.ts";

/** One session's presence identities, per room. */
export class ShownAs {
  readonly #self: PresenceMember;
  readonly #members = new Map<string, PresenceMember>();

  /** @param self the session: shown where no other identity was set */
  constructor(self: PresenceMember) {
    this.#self = self;
  }

  /** Shows `as` for the membership of `room`; its events go to the session. */
  set(room: string, as: { readonly userId: string; readonly info?: PresenceInfo }): void {
    const self = this.#self;
    this.#members.set(room, {
      userId: as.userId,
      presenceInfo: as.info,
      presence: (event) => self.presence(event),
    });
  }

  /** The member presence knows for `room`. */
  of(room: string): PresenceMember {
    return this.#members.get(room) ?? this.#self;
  }

  /** Forgets the identity of `room` (the membership ended). */
  delete(room: string): void {
    this.#members.delete(room);
  }
}
