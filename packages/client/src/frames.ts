/**
 * The client's side of the wire format: the frames it sends, and how a
 * received frame is split into messages and parsed.
 *
 * @module
 */
import type { JsonValue, ServerMessage } from "./wire.ts";
import type { RoomPosition } from "./room.ts";

/** A frame the client sends; every one but `ping` is a request awaiting a reply. */
export type ClientFrame =
  | { type: "join"; room: string; id: string; since?: RoomPosition }
  | { type: "history"; room: string; id: string; limit?: number; before?: number }
  | { type: "leave"; room: string; id: string }
  | { type: "message"; room: string; payload: JsonValue; id: string }
  | { type: "refresh"; token: string; id: string }
  | { type: "rpc"; method: string; payload: JsonValue; id: string }
  | { type: "ping"; id: string };

/**
 * The messages in one received frame, in order: a parsed message, or
 * `undefined` for a line that is not a JSON object with a `type`. Lazy, so
 * that the caller can stop when a handler closed the client.
 */
export function* decodeFrame(data: string): Generator<ServerMessage | undefined> {
  // With `?batch=1` one frame carries several messages; without, the split is a no-op.
  for (const line of data.split("\n")) {
    if (line.trim() === "") continue;
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      message = undefined;
    }
    // Trusting the server's shapes beyond `type` is the price of zero dependencies.
    yield isRecord(message) && typeof message.type === "string"
      ? message as ServerMessage
      : undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
