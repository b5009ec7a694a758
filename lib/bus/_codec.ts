/**
 * The wire form of an {@linkcode Envelope}, shared by the transports that
 * send strings (BroadcastChannel, Redis): a one-line JSON header, a newline,
 * then the frame verbatim.
 *
 * The frame is already serialized JSON; nesting it as a JSON string would
 * escape every quote and backslash and could double its size, so the size a
 * caller checks (the frame's) would say little about the size on the wire.
 *
 * @module
 */
import { utf8ByteLength, utf8Length } from "../protocol.ts";
import { isEnvelope } from "./_sequence.ts";
import type { Envelope } from "./types.ts";

/** Serializes an envelope for the wire. */
export function encodeEnvelope(envelope: Envelope): string {
  const { origin, seq, epoch, room, frame } = envelope;
  const header = epoch === undefined ? { origin, seq, room } : { origin, seq, epoch, room };
  return `${JSON.stringify(header)}\n${frame}`;
}

/**
 * Parses what arrived on the wire. Returns `undefined` for anything that is
 * not a well-formed envelope of at most `maxBytes`: other code, other
 * versions or a hostile peer may write to the same channel.
 */
export function decodeEnvelope(data: unknown, maxBytes: number): Envelope | undefined {
  if (typeof data !== "string" || utf8Length(data, maxBytes) > maxBytes) return undefined;
  const newline = data.indexOf("\n");
  if (newline < 0) return undefined;
  let header: unknown;
  try {
    header = JSON.parse(data.slice(0, newline));
  } catch {
    return undefined;
  }
  if (typeof header !== "object" || header === null) return undefined;
  const candidate: unknown = { ...header, frame: data.slice(newline + 1) };
  if (!isEnvelope(candidate)) return undefined;
  // Rebuilt field by field so that nothing else a peer put in the header travels on.
  const { origin, seq, epoch, room, frame } = candidate;
  return epoch === undefined ? { origin, seq, room, frame } : { origin, seq, epoch, room, frame };
}

/**
 * True when the envelope for `frame` is sure to fit in `maxBytes` once
 * stamped, whatever its `seq` and `epoch`. Checked before stamping, so that a
 * refused envelope does not use up a sequence number and show as a gap.
 */
export function fitsEnvelope(
  origin: string,
  room: string,
  frame: string,
  maxBytes: number,
): boolean {
  const widest = JSON.stringify({
    origin,
    seq: Number.MAX_SAFE_INTEGER,
    epoch: Number.MAX_SAFE_INTEGER,
    room,
  });
  const budget = maxBytes - utf8ByteLength(widest) - 1;
  return budget >= 0 && utf8Length(frame, budget) <= budget;
}
