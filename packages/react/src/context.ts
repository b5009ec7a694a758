/**
 * The client a component tree shares: {@linkcode RealtimeProvider} puts one
 * `RealtimeClient` in context, {@linkcode useRealtime} reads it back.
 *
 * @module
 */
// @ts-types="@types/react"
import { createContext, createElement, type ReactNode, useContext } from "react";
import type { RealtimeClient } from "@realtime/client";

const RealtimeContext = createContext<RealtimeClient | null>(null);

/** Props of {@linkcode RealtimeProvider}. */
export interface RealtimeProviderProps {
  /**
   * The client the tree uses, from `connect()`. Create it once, outside
   * render (module scope, or `useState(() => connect(...))`), and close it
   * yourself: the provider never closes it, so StrictMode's double mount and
   * a remounted provider keep the one connection.
   */
  client: RealtimeClient;
  children?: ReactNode;
}

/**
 * Makes `client` available to the hooks below it.
 *
 * @example
 * ```tsx ignore
 * const client = connect("/ws", { token: getToken });
 * createRoot(el).render(<RealtimeProvider client={client}><App /></RealtimeProvider>);
 * ```
 */
export function RealtimeProvider(props: RealtimeProviderProps): ReactNode {
  return createElement(RealtimeContext.Provider, { value: props.client }, props.children);
}

/**
 * The client of the nearest {@linkcode RealtimeProvider}.
 *
 * @throws {Error} outside a provider
 */
export function useRealtime(): RealtimeClient {
  const client = useContext(RealtimeContext);
  if (client === null) {
    throw new Error("useRealtime: no RealtimeProvider above this component");
  }
  return client;
}
