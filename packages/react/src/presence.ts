/**
 * {@linkcode usePresence}: who is in a presence room, as React state, kept
 * from the client's presence frames (no polling). The hook holds its own
 * subscription to the room while mounted.
 *
 * @module
 */
// @ts-types="@types/react"
import { useEffect, useState } from "react";
import type { PresenceSnapshot, Subscription } from "@realtime/client";
import { useRealtime } from "./context.ts";

const EMPTY: PresenceSnapshot = { members: [], count: 0, truncated: false };

/**
 * The members of `room` (joined while mounted), re-rendered on every
 * arrival and departure; empty until the server's first presence state.
 *
 * @example
 * ```tsx ignore
 * const { members, count } = usePresence("chat:lobby");
 * return <p>{count} online: {members.map((m) => m.userId).join(", ")}</p>;
 * ```
 */
export function usePresence(room: string): PresenceSnapshot {
  const client = useRealtime();
  const [snapshot, setSnapshot] = useState<PresenceSnapshot>(
    () => client.presence(room) ?? EMPTY,
  );

  useEffect(() => {
    let active = true;
    let subscription: Subscription | undefined;
    const refresh = () => {
      if (active) setSnapshot(client.presence(room) ?? EMPTY);
    };
    const off = client.on("presence", (changed) => {
      if (changed === room) refresh();
    });
    client.join(room, () => {}).then((sub) => {
      if (!active) return void sub.unsubscribe().catch(() => {});
      subscription = sub;
      refresh();
    }).catch(() => {});
    return () => {
      active = false;
      off();
      if (subscription !== undefined) void subscription.unsubscribe().catch(() => {});
    };
  }, [client, room]);

  return snapshot;
}
