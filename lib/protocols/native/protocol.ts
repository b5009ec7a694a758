/**
 * The native protocol's codec: JSON text frames, one message per frame. The
 * zod schemas here are the single source of the message types; clients,
 * server and tests all take their types from them. Every frame the server
 * sends on `/ws` is encoded here, and only here (`encode*`); the session loop
 * (`lib/protocols/native/`) decides when to send which.
 *
 * @module
 */
import { z } from "zod";
import type { ErrorCode } from "../../codes.ts";
import { jsonDeeperThan, parseJsonRefusingProto, ProtoKeyError } from "../../core/json.ts";
import type { HistoryPage } from "../../core/history_reader.ts";
import type { PresenceEvent } from "../../core/presence/events.ts";
import type { StreamJoin } from "../../core/room_stream.ts";

export {
  jsonDeeperThan,
  parseJsonRefusingProto,
  ProtoKeyError,
  relayProblem,
  utf8ByteLength,
  utf8Length,
} from "../../core/json.ts";

/** Longest room name, in characters. */
export const MAX_ROOM_NAME_LENGTH = 128;
/** Longest request `id`, in characters. */
export const MAX_REQUEST_ID_LENGTH = 64;
/** Longest token accepted in a `refresh` (and at the handshake), in characters. */
export const MAX_TOKEN_LENGTH = 8192;

const ROOM_NAME_PATTERN = new RegExp(`^[A-Za-z0-9_\\-.:@/]{1,${MAX_ROOM_NAME_LENGTH}}$`);

/** A room name: 1–128 characters of `A-Z a-z 0-9 _ - . : @ /`. */
export const RoomName = z.string().regex(
  ROOM_NAME_PATTERN,
  "room must be 1-128 characters of A-Z a-z 0-9 _ - . : @ /",
);

/** A client-chosen request id, echoed in the reply. */
export const RequestId = z.string().min(1).max(MAX_REQUEST_ID_LENGTH);

/** Any JSON value. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

const Payload = z.custom<JsonValue>((v) => v !== undefined, "payload is required");

/** Longest stream epoch accepted from a client, in characters. */
export const MAX_EPOCH_LENGTH = 64;
/** Most messages one `history` request may ask for. */
export const MAX_HISTORY_LIMIT = 1000;

/** A position in a history room's stream, as a client echoes it back. */
export const StreamPositionSchema = z.strictObject({
  offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  epoch: z.string().min(1).max(MAX_EPOCH_LENGTH),
});

/**
 * `{"type":"join","room":R,"since"?:{offset,epoch}}`: join a room the token or
 * policy grants; `since` asks to recover what was missed after that position.
 */
export const JoinRequest = z.strictObject({
  type: z.literal("join"),
  room: RoomName,
  since: StreamPositionSchema.optional(),
  id: RequestId.optional(),
});
/** `{"type":"leave","room":R}`: leave a joined room. */
export const LeaveRequest = z.strictObject({
  type: z.literal("leave"),
  room: RoomName,
  id: RequestId.optional(),
});
/** `{"type":"message","room":R,"payload":P}`: publish to a joined room. */
export const PublishRequest = z.strictObject({
  type: z.literal("message"),
  room: RoomName,
  payload: Payload,
  id: RequestId.optional(),
});
/**
 * `{"type":"history","room":R,"limit"?,"before"?}`: the newest `limit`
 * messages older than offset `before`, oldest first.
 */
export const HistoryRequest = z.strictObject({
  type: z.literal("history"),
  room: RoomName,
  limit: z.number().int().min(1).max(MAX_HISTORY_LIMIT).optional(),
  before: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  id: RequestId.optional(),
});
/** `{"type":"ping"}`: app-level liveness check; answered with `pong`. */
export const PingRequest = z.strictObject({
  type: z.literal("ping"),
  id: RequestId.optional(),
});
/** `{"type":"refresh","token":T}`: replace the connection's token before it expires. */
export const RefreshRequest = z.strictObject({
  type: z.literal("refresh"),
  token: z.string().min(1).max(MAX_TOKEN_LENGTH),
  id: RequestId.optional(),
});

/** `{"type":"presence","room":R}`: a fresh `presence_state` of a joined presence room. */
export const PresenceRequest = z.strictObject({
  type: z.literal("presence"),
  room: RoomName,
  id: RequestId.optional(),
});

/** Longest RPC method name, in characters. */
export const MAX_METHOD_LENGTH = 128;

/** `rpc`: a call to the backend (`HOOK_RPC_URL`), answered by `rpc_result` or `error` (same id). */
export const RpcRequest = z.strictObject({
  type: z.literal("rpc"),
  method: z.string().min(1).max(MAX_METHOD_LENGTH),
  payload: Payload,
  id: RequestId,
});

/** Every message a client may send, discriminated on `type`. */
export const ClientMessage = z.discriminatedUnion("type", [
  JoinRequest,
  LeaveRequest,
  PublishRequest,
  PingRequest,
  RefreshRequest,
  HistoryRequest,
  PresenceRequest,
  RpcRequest,
]);
/** A parsed client message. */
export type ClientMessage = z.infer<typeof ClientMessage>;

const CLIENT_TYPES: ReadonlySet<string> = new Set([
  "join",
  "leave",
  "message",
  "ping",
  "refresh",
  "history",
  "presence",
  "rpc",
]);

/** One member of a presence room in `presence_state`: a user, with how many connections it has there. */
export const PresenceMember = z.object({
  userId: z.string(),
  /** The token's `info` claim, when it had one. */
  info: z.record(z.string(), z.unknown()).optional(),
  connections: z.number(),
});
/** A member as `presence_state` lists it. */
export type PresenceMember = z.infer<typeof PresenceMember>;

/**
 * The members of a presence room: sent once after `joined` and in answer to
 * a `presence` request. Above `PRESENCE_MAX_MEMBERS` it lists that many, with
 * `truncated: true`; `count` is always the true number of users.
 */
export const PresenceState = z.object({
  type: z.literal("presence_state"),
  room: z.string(),
  id: z.string().optional(),
  members: z.array(PresenceMember),
  count: z.number(),
  truncated: z.boolean().optional(),
});
/** A `presence_state` frame. */
export type PresenceState = z.infer<typeof PresenceState>;

/**
 * Users whose first connection joined, or last left, a presence room during
 * one batching window, relative to the last state or diff. In a room above
 * `PRESENCE_MAX_MEMBERS`, `joins` and `leaves` are empty and only `count` moves.
 */
export const PresenceDiff = z.object({
  type: z.literal("presence_diff"),
  room: z.string(),
  joins: z.array(z.object({ userId: z.string(), info: PresenceMember.shape.info })),
  leaves: z.array(z.object({ userId: z.string() })),
  count: z.number(),
});
/** A `presence_diff` frame. */
export type PresenceDiff = z.infer<typeof PresenceDiff>;

/**
 * A message the server sends (server → client). Documented here; built by the
 * `encode*` helpers below, never parsed by the server.
 */
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
    /** History rooms: the stream position the member starts after. */
    offset?: number | undefined;
    epoch?: string | undefined;
    /** History rooms joined with `since`: whether every missed message follows. */
    recovered?: boolean | undefined;
    /** With `recovered: true`: how many replayed messages follow. */
    missed?: number | undefined;
  }
  | { type: "left"; room: string; id?: string | undefined; reason?: "revoked" | undefined }
  | {
    type: "message";
    room: string;
    payload: unknown;
    from: string;
    ts: number;
    /** History rooms only. */
    offset?: number | undefined;
    epoch?: string | undefined;
  }
  | {
    type: "ack";
    id: string;
    /** History rooms: the message's offset (the same for a deduplicated resend). */
    offset?: number | undefined;
  }
  | {
    type: "history";
    room: string;
    id?: string | undefined;
    /** `message` frames, oldest first, exactly as members received them. */
    messages: unknown[];
    offset: number;
    epoch: string;
    /** Whether older messages are still kept (page on with `before`). */
    more: boolean;
  }
  | PresenceState
  | PresenceDiff
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

/** Default deepest nesting of arrays/objects in a payload (`MAX_PAYLOAD_DEPTH`). */
export const DEFAULT_MAX_PAYLOAD_DEPTH = 64;

/** Options for {@linkcode parseClientFrame}. */
export interface ParseOptions {
  /**
   * Deepest nesting of arrays/objects allowed in a `payload` (the frame
   * itself is one level more).
   *
   * @default {DEFAULT_MAX_PAYLOAD_DEPTH}
   */
  maxPayloadDepth?: number;
}

/** Result of {@linkcode parseClientFrame}. */
export type ParseResult =
  | { ok: true; message: ClientMessage }
  | { ok: false; error: string; id?: string };

/** Pulls a usable `id` out of an object that failed the schema, so the error can carry it. */
function idOf(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null || !("id" in value)) return undefined;
  const result = RequestId.safeParse(value.id);
  return result.success ? result.data : undefined;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join(".");
  return path ? `${path}: ${issue.message}` : issue.message;
}

/**
 * Parses and validates one text frame from a client. Never throws.
 *
 * Objects with a `__proto__` key anywhere are refused: they are harmless to us
 * but a classic prototype-pollution vector for the other clients that receive
 * the payload. So is nesting deeper than `maxPayloadDepth` levels, which
 * crashes recursive JSON parsers.
 *
 * @example
 * ```ts
 * import { parseClientFrame } from "./protocol.ts";
 * const r = parseClientFrame('{"type":"join","room":"lobby"}');
 * if (r.ok) console.log(r.message.type); // "join"
 * ```
 */
export function parseClientFrame(text: string, options: ParseOptions = {}): ParseResult {
  const { maxPayloadDepth = DEFAULT_MAX_PAYLOAD_DEPTH } = options;
  if (jsonDeeperThan(text, maxPayloadDepth + 1)) {
    const error = `payload nests arrays/objects deeper than ${maxPayloadDepth} levels`;
    // V8's parser is iterative, so reading the id to echo it is safe at any depth.
    let id: string | undefined;
    try {
      id = idOf(JSON.parse(text));
    } catch {
      // Not JSON either: no id to echo.
    }
    return id === undefined ? { ok: false, error } : { ok: false, error, id };
  }
  let value: unknown;
  try {
    value = parseJsonRefusingProto(text);
  } catch (err) {
    if (err instanceof ProtoKeyError) return { ok: false, error: err.message };
    return { ok: false, error: "frame is not valid JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, error: "frame must be a JSON object" };
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== "string" || !CLIENT_TYPES.has(type)) {
    const id = idOf(value);
    const error = typeof type === "string"
      ? `unknown type ${JSON.stringify(type.slice(0, 32))}`
      : "type must be a string";
    return id === undefined ? { ok: false, error } : { ok: false, error, id };
  }
  const result = ClientMessage.safeParse(value);
  if (result.success) return { ok: true, message: result.data };
  const error = result.error.issues.slice(0, 3).map(describeIssue).join("; ");
  const id = idOf(value);
  return id === undefined ? { ok: false, error } : { ok: false, error, id };
}

/** Options for {@linkcode encodeError}. */
export interface ErrorFields {
  id?: string | undefined;
  room?: string | undefined;
  retryAfterMs?: number | undefined;
}

/** Serializes an `error` frame. */
export function encodeError(code: ErrorCode, message: string, fields: ErrorFields = {}): string {
  const out: Record<string, unknown> = { type: "error", code, message };
  if (fields.id !== undefined) out.id = fields.id;
  if (fields.room !== undefined) out.room = fields.room;
  if (fields.retryAfterMs !== undefined) out.retryAfterMs = fields.retryAfterMs;
  return JSON.stringify(out);
}

/**
 * Serializes a room `message` frame once, so that fan-out to N members costs
 * one `JSON.stringify` rather than N.
 */
export function encodeRoomMessage(
  room: string,
  payloadJson: string,
  from: string,
  ts: number,
): string {
  return `{"type":"message","room":${JSON.stringify(room)},"payload":${payloadJson},"from":${
    JSON.stringify(from)
  },"ts":${ts}}`;
}

/**
 * Adds a history room's stream position to a frame built by
 * {@linkcode encodeRoomMessage}: string surgery on the closing brace, so that
 * a stored frame is not parsed again on every delivery or replay.
 */
export function withPosition(frame: string, offset: number, epoch: string): string {
  return `${frame.slice(0, -1)},"offset":${offset},"epoch":${JSON.stringify(epoch)}}`;
}

/** Serializes any other server message. */
export function encode(message: ServerMessage): string {
  return JSON.stringify(message);
}

/** Frames of presence events already encoded: one event fans out to every listener. */
const presenceFrames = new WeakMap<PresenceEvent, string>();

/** Encodes a core presence event as `presence_state` or `presence_diff`, once per event. */
export function encodePresence(event: PresenceEvent): string {
  let frame = presenceFrames.get(event);
  if (frame !== undefined) return frame;
  if (event.kind === "snapshot") {
    const members: PresenceMember[] = event.entries.map((e) =>
      e.info === undefined
        ? { userId: e.userId, connections: e.connections }
        : { userId: e.userId, info: e.info, connections: e.connections }
    );
    frame = encode({
      type: "presence_state",
      room: event.room,
      ...(event.requestId === undefined ? {} : { id: event.requestId }),
      members,
      count: event.count,
      ...(event.truncated ? { truncated: true } : {}),
    });
  } else {
    frame = encode({
      type: "presence_diff",
      room: event.room,
      joins: event.joined.map((j) =>
        j.info === undefined ? { userId: j.userId } : { userId: j.userId, info: j.info }
      ),
      leaves: event.left.map((userId) => ({ userId })),
      count: event.count,
    });
  }
  presenceFrames.set(event, frame);
  return frame;
}

/** Serializes `welcome`, the first frame of every connection. */
export function encodeWelcome(
  connectionId: string,
  userId: string,
  expiresAt: number | null,
  instanceId: string,
): string {
  return encode({ type: "welcome", connectionId, userId, expiresAt, instanceId });
}

/** Serializes `joined`, with the stream position of a history room (`join` is null elsewhere). */
export function encodeJoined(
  room: string,
  id: string | undefined,
  join: StreamJoin | null,
): string {
  const reply: ServerMessage & { type: "joined" } = { type: "joined", room };
  if (id !== undefined) reply.id = id;
  if (join !== null) {
    reply.offset = join.position.offset;
    reply.epoch = join.position.epoch;
    if (join.recovered !== undefined) reply.recovered = join.recovered;
    if (join.missed !== undefined) reply.missed = join.missed;
  }
  return encode(reply);
}

/** Serializes `left`; `reason: "revoked"` when a refresh took the room away. */
export function encodeLeft(room: string, id: string | undefined, reason?: "revoked"): string {
  const left: ServerMessage & { type: "left" } = { type: "left", room };
  if (id !== undefined) left.id = id;
  if (reason !== undefined) left.reason = reason;
  return encode(left);
}

/** Serializes `ack` of a publish, with its offset in a history room. */
export function encodeAck(id: string, offset?: number): string {
  return encode(offset === undefined ? { type: "ack", id } : { type: "ack", id, offset });
}

/** Serializes `pong`. */
export function encodePong(id: string | undefined): string {
  return encode(id === undefined ? { type: "pong" } : { type: "pong", id });
}

/** Serializes `expiring`: the token expires at `expiresAt` (seconds) unless refreshed. */
export function encodeExpiring(expiresAt: number): string {
  return encode({ type: "expiring", expiresAt });
}

/** Serializes `refreshed`: the connection now expires at `expiresAt`. */
export function encodeRefreshed(expiresAt: number | null, id: string | undefined): string {
  return encode(
    id === undefined ? { type: "refreshed", expiresAt } : { type: "refreshed", expiresAt, id },
  );
}

/** Serializes `rpc_result`: the backend's answer to the call `id`. */
export function encodeRpcResult(id: string, payload: JsonValue): string {
  return encode({ type: "rpc_result", id, payload });
}

/** Serializes a `history` reply around stored frames, without parsing them again. */
export function encodeHistory(room: string, page: HistoryPage, id: string | undefined): string {
  const messages = page.entries.map((e) => withPosition(e.frame, e.offset, page.position.epoch));
  return `{"type":"history","room":${JSON.stringify(room)},${
    id === undefined ? "" : `"id":${JSON.stringify(id)},`
  }"messages":[${messages.join(",")}],"offset":${page.position.offset},"epoch":${
    JSON.stringify(page.position.epoch)
  },"more":${page.more}}`;
}
