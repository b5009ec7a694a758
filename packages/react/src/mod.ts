/**
 * React hooks for the realtime server's client (`@realtime/client`):
 * {@linkcode RealtimeProvider} shares one client, {@linkcode useRealtime}
 * reads it, {@linkcode useRoom} joins a room (messages, publish, position),
 * {@linkcode usePresence} lists who is in it and {@linkcode useConnectionState}
 * follows the connection. StrictMode-safe: mount/unmount/mount leaves one
 * subscription per hook.
 *
 * @example
 * ```tsx ignore
 * import { connect } from "@realtime/client";
 * import { RealtimeProvider, useRoom } from "@realtime/react";
 * const client = connect("/ws", { token: getToken });
 * function Chat() {
 *   const { messages, publish } = useRoom<{ text: string }>("chat:lobby", { since: 0 });
 *   return <button onClick={() => publish({ text: "hi" })}>{messages.length}</button>;
 * }
 * root.render(<RealtimeProvider client={client}><Chat /></RealtimeProvider>);
 * ```
 *
 * @module
 */
export { RealtimeProvider, type RealtimeProviderProps, useRealtime } from "./context.ts";
export { useConnectionState } from "./connection.ts";
export { type RoomState, useRoom, type UseRoomOptions } from "./room.ts";
export { usePresence } from "./presence.ts";
