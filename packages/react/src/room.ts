/**
 * {@linkcode useRoom}: one joined room as React state (its messages, its
 * position, whether it is joined) and a `publish` bound to it. Each
 * component holds its own subscription to the room, so two components on
 * one room both receive, and unmounting one leaves the other; StrictMode's
 * mount/unmount/mount ends with exactly one subscription.
 *
 * @module
 */
// @ts-types="@types/react"
import { useCallback, useEffect, useState } from "react";
import type {
  JsonValue,
  RealtimeError,
  RoomMessage,
  RoomPosition,
  Subscription,
} from "@realtime/client";
import { useRealtime } from "./context.ts";

/** Options for {@linkcode useRoom}. */
export interface UseRoomOptions {
  /**
   * Also show the room's past messages after this offset (0: everything
   * still kept), read with `history` once joined. A history room only;
   * without it, only messages that arrive while mounted are shown.
   */
  since?: number;
  /** Most messages kept in `messages` (the oldest are dropped). @default 200 */
  limit?: number;
}

/** What {@linkcode useRoom} returns. */
export interface RoomState<T> {
  /** Messages of the room, oldest first, at most `limit`. */
  messages: RoomMessage<T>[];
  /** Publishes to the room; rejects like `RealtimeClient.publish`. */
  publish: (payload: T & JsonValue) => Promise<void>;
  /** History rooms: the last position seen. */
  position: RoomPosition | undefined;
  /** True once the server confirmed the join. */
  joined: boolean;
  /** Why joining (or reading the past) failed, if it did. */
  error: RealtimeError | Error | undefined;
}

/**
 * Adds `more` after `list` (live messages arrive in order; the past goes
 * before what arrived live), dropping repeats of a history message (same
 * epoch and offset), and keeps the newest `limit`.
 */
function merge<T>(list: RoomMessage<T>[], more: RoomMessage<T>[], limit: number): RoomMessage<T>[] {
  const key = (m: RoomMessage<T>) => m.offset === undefined ? undefined : `${m.epoch}:${m.offset}`;
  const seen = new Set(list.map(key).filter((k) => k !== undefined));
  const next = [...list];
  for (const m of more) {
    const k = key(m);
    if (k !== undefined && seen.has(k)) continue;
    if (k !== undefined) seen.add(k);
    next.push(m);
  }
  return next.length > limit ? next.slice(next.length - limit) : next;
}

/**
 * Joins `room` while the component is mounted.
 *
 * @example
 * ```tsx ignore
 * const { messages, publish, joined } = useRoom<{ text: string }>("chat:lobby", { since: 0 });
 * return <>{messages.map((m) => <p key={m.offset}>{m.from}: {m.payload.text}</p>)}</>;
 * ```
 */
export function useRoom<T = JsonValue>(room: string, options: UseRoomOptions = {}): RoomState<T> {
  const { since, limit = 200 } = options;
  const client = useRealtime();
  const [messages, setMessages] = useState<RoomMessage<T>[]>([]);
  const [position, setPosition] = useState<RoomPosition | undefined>(undefined);
  const [joined, setJoined] = useState(false);
  const [error, setError] = useState<RealtimeError | Error | undefined>(undefined);

  useEffect(() => {
    let active = true;
    let subscription: Subscription | undefined;
    setMessages([]);
    setJoined(false);
    setError(undefined);
    const onMessage = (_payload: T, message: RoomMessage<T>) => {
      if (!active) return;
      setMessages((list) => merge(list, [message], limit));
      if (message.offset !== undefined && message.epoch !== undefined) {
        setPosition({ offset: message.offset, epoch: message.epoch });
      }
    };
    client.join<T>(room, onMessage).then(async (sub) => {
      // Unmounted while joining (StrictMode's first mount): give the subscription back.
      if (!active) return void sub.unsubscribe().catch(() => {});
      subscription = sub;
      setJoined(true);
      setPosition(sub.position);
      if (since === undefined) return;
      const page = await client.history<T>(room, { limit });
      if (!active) return;
      const past = page.messages.filter((m) => (m.offset ?? 0) > since);
      setMessages((list) => merge(past, list, limit));
    }).catch((err: RealtimeError | Error) => {
      if (active) setError(err);
    });
    const offLeft = client.on("left", (left) => {
      if (active && left === room) setJoined(false);
    });
    return () => {
      active = false;
      offLeft();
      if (subscription !== undefined) void subscription.unsubscribe().catch(() => {});
    };
  }, [client, room, since, limit]);

  const publish = useCallback(
    (payload: T & JsonValue) => client.publish(room, payload),
    [client, room],
  );
  return { messages, publish, position, joined, error };
}
