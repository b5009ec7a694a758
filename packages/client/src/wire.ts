/**
 * The wire protocol as the client sees it: plain TypeScript copies of the
 * server's message types (`lib/protocols/native/protocol.ts`) and code sets
 * (`lib/codes.ts`), so that the package and its `.d.ts` stand alone, with no
 * zod and no server module behind them.
 *
 * The server's zod schemas stay the single definition: `tests/client_wire_test.ts`
 * makes the compiler hold these types equal to the server's, so a change on
 * one side that is not made on the other fails `deno task check`.
 *
 * @module
 */

/** Any JSON value. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/** Codes the server puts in `{"type":"error","code":...}` frames. */
export type ErrorCode =
  | "bad_request"
  | "forbidden"
  | "not_joined"
  | "rate_limited"
  | "too_many_rooms"
  | "unauthorized"
  | "payload_too_large"
  | "unavailable"
  | "internal"
  | "not_found"
  | "rpc_error";

/** WebSocket close codes the server sends. */
export type CloseCode = 1000 | 1001 | 1008 | 1009 | 1011 | 1012 | 1013 | 4401 | 4403 | 4429;

/** One member as a `presence_state` frame lists it. */
export interface PresenceMemberFrame {
  userId: string;
  info?: Record<string, unknown> | undefined;
  connections: number;
}

/** A message the server sends; see the protocol table in the server's README. */
export type ServerMessage =
  | {
    type: "welcome";
    connectionId: string;
    userId: string;
    expiresAt: number | null;
    instanceId: string;
  }
  | {
    type: "joined";
    room: string;
    id?: string | undefined;
    offset?: number | undefined;
    epoch?: string | undefined;
    recovered?: boolean | undefined;
    missed?: number | undefined;
  }
  | { type: "left"; room: string; id?: string | undefined; reason?: "revoked" | undefined }
  | {
    type: "message";
    room: string;
    payload: unknown;
    from: string;
    ts: number;
    offset?: number | undefined;
    epoch?: string | undefined;
  }
  | { type: "ack"; id: string; offset?: number | undefined }
  | {
    type: "history";
    room: string;
    id?: string | undefined;
    messages: unknown[];
    offset: number;
    epoch: string;
    more: boolean;
  }
  | {
    type: "presence_state";
    room: string;
    id?: string | undefined;
    members: PresenceMemberFrame[];
    count: number;
    truncated?: boolean | undefined;
  }
  | {
    type: "presence_diff";
    room: string;
    joins: { userId: string; info?: Record<string, unknown> | undefined }[];
    leaves: { userId: string }[];
    count: number;
  }
  | { type: "pong"; id?: string | undefined }
  | { type: "expiring"; expiresAt: number }
  | { type: "refreshed"; expiresAt: number | null; id?: string | undefined }
  | { type: "rpc_result"; id: string; payload: unknown }
  | {
    type: "error";
    code: ErrorCode;
    message: string;
    id?: string | undefined;
    room?: string | undefined;
    retryAfterMs?: number | undefined;
  };
