/**
 * {@linkcode useConnectionState}: the client's connection state as React
 * state, re-rendering on every change.
 *
 * @module
 */
// @ts-types="@types/react"
import { useCallback, useSyncExternalStore } from "react";
import type { ConnectionState } from "@realtime/client";
import { useRealtime } from "./context.ts";

/**
 * `"connecting"`, `"open"`, `"reconnecting"` or `"closed"`, kept current.
 *
 * @example
 * ```tsx ignore
 * const state = useConnectionState();
 * return <span className={state}>{state === "open" ? "online" : "offline"}</span>;
 * ```
 */
export function useConnectionState(): ConnectionState {
  const client = useRealtime();
  const subscribe = useCallback((changed: () => void) => {
    const offs = [
      client.on("open", changed),
      client.on("close", changed),
      client.on("reconnecting", changed),
    ];
    return () => offs.forEach((off) => off());
  }, [client]);
  return useSyncExternalStore(subscribe, () => client.state, () => "connecting");
}
