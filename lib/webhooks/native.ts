/**
 * The native webhooks (issue 18): what the core tells (a message published,
 * a connection closed) turned into this server's events and handed to the
 * engine. The core knows nothing of webhooks: it calls the hooks this module
 * gives it (`onPublished` of the rooms, `onEnd` of the sessions).
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { RoomPolicy } from "../core/room_policy.ts";
import type { WebhookEngine } from "./engine.ts";
import { nativeSink, type WebhookSink } from "./sinks.ts";

/** The native sinks of the configuration: one per `WEBHOOK_URL`. */
export function nativeSinks(section: Config["webhooks"]): WebhookSink[] {
  const { urls, secret, events, retryMs } = section;
  if (secret === undefined) return [];
  return urls.map((url) => nativeSink({ url, secret, events, retryForMs: retryMs }));
}

/** What a closed connection tells (a session of any protocol). */
export interface ClosedConnection {
  /** The connection id (the one in `welcome`). */
  readonly id: string;
  /** Its user. */
  readonly userId: string;
}

/**
 * Turns the core's news into native events.
 *
 * @example
 * ```ts ignore
 * const native = new NativeWebhooks({ engine, policy });
 * const rooms = new RoomManager({ bus, onPublished: (room, frame) => native.published(room, frame) });
 * // in the session context: onEnd(session, code, reason) { native.closed(session, code, reason); }
 * ```
 */
export class NativeWebhooks {
  readonly #engine: WebhookEngine;
  readonly #policy: RoomPolicy;
  readonly #publishes: boolean;
  readonly #closes: boolean;
  readonly #foreign: (name: string) => boolean;

  /**
   * @param options the engine, the room policy (its `webhook` rules), and the
   * rooms and users another protocol owns (skipped)
   */
  constructor(
    options: { engine: WebhookEngine; policy: RoomPolicy; foreign?: (name: string) => boolean },
  ) {
    this.#engine = options.engine;
    this.#policy = options.policy;
    this.#foreign = options.foreign ?? (() => false);
    this.#publishes = this.#engine.wants("message_published");
    this.#closes = this.#engine.wants("connection_closed");
  }

  /**
   * A message was published (by a socket, `POST /api/publish` or the
   * library's `publish`): `message_published` in rooms whose policy rule sets
   * `"webhook": true`. `frame` is the native room message the rooms carry.
   */
  published(room: string, frame: string): void {
    if (!this.#publishes || this.#foreign(room) || !this.#policy.webhookFor(room)) return;
    const message = readRoomMessage(frame);
    if (message === undefined) return;
    this.#engine.emit({
      name: "message_published",
      room,
      publisher: message.from,
      payload: message.payload,
    });
  }

  /** A connection ended: `connection_closed` with its close code and reason (opt-in). */
  closed(connection: ClosedConnection, code: number, reason: string): void {
    if (!this.#closes || this.#foreign(connection.userId)) return;
    this.#engine.emit({
      name: "connection_closed",
      connectionId: connection.id,
      userId: connection.userId,
      code,
      reason,
    });
  }
}

/** The sender and payload of a native room message frame; undefined for anything else. */
function readRoomMessage(frame: string): { from: string; payload: unknown } | undefined {
  try {
    const message: unknown = JSON.parse(frame);
    if (typeof message !== "object" || message === null) return undefined;
    const { from, payload } = message as { from?: unknown; payload?: unknown };
    return typeof from === "string" ? { from, payload } : undefined;
  } catch {
    return undefined;
  }
}
