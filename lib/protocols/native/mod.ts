/**
 * One session per WebSocket on `/ws`. The session itself is protocol-neutral
 * (`lib/core/session.ts`); the native protocol is its adapter at the edge
 * (`lib/protocols/native/`). This module keeps the names the server imports.
 *
 * @module
 */
import type { Principal } from "../../core/auth.ts";
import { CoreSession } from "../../core/session.ts";
import type { SessionInfo } from "../../core/types.ts";
import type { WebSocketLike } from "../../edge/types.ts";
import { NativeConnection, type NativeContext } from "./connection.ts";

export { BACKLOG_CHECK_BYTES } from "../../core/backlog.ts";
export { FLOOD_WINDOW_MS } from "../../core/intake.ts";
export { CoreSession } from "../../core/session.ts";
export type { SessionInfo } from "../../core/types.ts";
export { MAX_BATCH_BYTES } from "./connection.ts";
export { openNativeSession } from "./session.ts";

/** Shared services a native session uses; owned by the server. */
export type SessionContext = NativeContext;

/**
 * A connected, authenticated client on the native protocol: a core session
 * whose adapter is a {@linkcode NativeConnection} over `ws`. Same as
 * `openNativeSession`, with a constructor.
 */
export class Session extends CoreSession {
  /**
   * @param ctx shared services
   * @param ws the upgraded socket (not yet open)
   * @param principal who the token names
   * @param info handshake facts
   */
  constructor(ctx: NativeContext, ws: WebSocketLike, principal: Principal, info: SessionInfo) {
    super(ctx, principal, info, (core) => new NativeConnection(core, ws, ctx));
  }
}
