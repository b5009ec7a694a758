/**
 * A native-protocol session: a {@linkcode CoreSession} carried by a
 * {@linkcode NativeConnection} over one upgraded socket.
 *
 * @module
 */
import type { Principal } from "../../core/auth.ts";
import { CoreSession } from "../../core/session.ts";
import type { SessionInfo } from "../../core/types.ts";
import type { WebSocketLike } from "../../edge/types.ts";
import { NativeConnection, type NativeContext } from "./connection.ts";

/**
 * Opens a session on `ws` that speaks the native protocol. The server keeps
 * the returned core session (revocations and shutdown close it through it).
 *
 * @example
 * ```ts ignore
 * const { socket, response } = upgrade(req, { idleTimeoutSec: 30 });
 * sessions.add(openNativeSession(ctx, socket, principal, info));
 * ```
 */
export function openNativeSession(
  ctx: NativeContext,
  ws: WebSocketLike,
  principal: Principal,
  info: SessionInfo,
): CoreSession {
  return new CoreSession(ctx, principal, info, (core) => new NativeConnection(core, ws, ctx));
}
