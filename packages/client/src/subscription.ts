/**
 * One subscriber's hold on a joined room: what `join` resolves with. A room
 * may have several subscriptions (two components showing the same room);
 * the connection stays in the room until the last one unsubscribes.
 *
 * @module
 */
import type { RoomPosition } from "./room.ts";

/** What a {@linkcode Subscription} needs from its client. */
export interface SubscriptionOwner {
  /** Whether `handler` still receives `room`'s messages. */
  attached(room: string, handler: unknown): boolean;
  /** Detaches `handler`; leaves the room when it was the last one. */
  detach(room: string, handler: unknown): Promise<void>;
  /** The room's last position, in a history room. */
  position(room: string): RoomPosition | undefined;
}

/**
 * One handler's subscription to a joined room, from `RealtimeClient.join`.
 *
 * @example
 * ```ts ignore
 * const sub = await rt.join("chat:lobby", (payload) => console.log(payload));
 * // ... later, when the view goes away:
 * await sub.unsubscribe();
 * ```
 */
export class Subscription {
  /** The room subscribed to. */
  readonly room: string;
  readonly #owner: SubscriptionOwner;
  readonly #handler: unknown;

  /**
   * Made by the client; apps receive it from `join`.
   *
   * @param room the joined room
   * @param owner the client holding the room
   * @param handler this subscription's handler, as the client stores it
   */
  constructor(room: string, owner: SubscriptionOwner, handler: unknown) {
    this.room = room;
    this.#owner = owner;
    this.#handler = handler;
  }

  /**
   * Whether the handler still receives messages: false after `unsubscribe`,
   * `leave`, `close`, or when the server removed the client from the room
   * (the `"left"` event).
   */
  get active(): boolean {
    return this.#owner.attached(this.room, this.#handler);
  }

  /** The room's last position, in a history room (shared by its subscriptions). */
  get position(): RoomPosition | undefined {
    return this.#owner.position(this.room);
  }

  /**
   * Stops this handler. When it was the room's last one, the client leaves
   * the room, and the promise resolves as `leave`'s does. Safe to call more
   * than once.
   */
  unsubscribe(): Promise<void> {
    return this.#owner.detach(this.room, this.#handler);
  }
}
