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
import { utf8ByteLength, utf8Length } from "../protocols/native/protocol.ts";
import { isEnvelope } from "./_sequence.ts";
import type { Envelope } from "./types.ts";

/**
 * The JSON header of an envelope. A `position` travels as `offset` and
 * `stream` (its epoch), the names the Redis history script writes too.
 */
interface WireHeader {
  origin: string;
  seq: number;
  epoch?: number;
  room: string;
  kind?: string;
  offset?: number;
  stream?: string;
}

/** Serializes an envelope for the wire. */
export function encodeEnvelope(envelope: Envelope): string {
  const { origin, seq, epoch, room, kind, position } = envelope;
  const header: WireHeader = { origin, seq, room };
  if (epoch !== undefined) header.epoch = epoch;
  if (kind !== undefined) header.kind = kind;
  if (position !== undefined) {
    header.offset = position.offset;
    header.stream = position.epoch;
  }
  return `${JSON.stringify(header)}\n${envelope.frame}`;
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
  const { offset, stream, ...rest } = header as Partial<WireHeader>;
  const candidate: Record<string, unknown> = { ...rest, frame: data.slice(newline + 1) };
  if (offset !== undefined || stream !== undefined) {
    candidate.position = { offset, epoch: stream };
  }
  if (!isEnvelope(candidate)) return undefined;
  // Rebuilt field by field so that nothing else a peer put in the header travels on.
  const { origin, seq, epoch, room, frame, kind, position } = candidate;
  const envelope: Envelope = { origin, seq, room, frame };
  if (epoch !== undefined) envelope.epoch = epoch;
  if (kind !== undefined) envelope.kind = kind;
  if (position !== undefined) {
    envelope.position = { offset: position.offset, epoch: position.epoch };
  }
  return envelope;
}

/** Longest `kind` of a system envelope, in characters. */
export const MAX_KIND_LENGTH = 32;
/** Longest stream epoch a history store may use, in characters. */
export const MAX_STREAM_EPOCH_LENGTH = 64;

/**
 * True when the envelope for `frame` is sure to fit in `maxBytes` once
 * stamped, whatever its `seq`, `epoch`, `kind` and `position`. Checked before
 * stamping, so that a refused envelope does not use up a sequence number and
 * show as a gap.
 */
export function fitsEnvelope(
  origin: string,
  room: string,
  frame: string,
  maxBytes: number,
): boolean {
  const widest = JSON.stringify(
    {
      origin,
      seq: Number.MAX_SAFE_INTEGER,
      epoch: Number.MAX_SAFE_INTEGER,
      room,
      kind: "k".repeat(MAX_KIND_LENGTH),
      offset: Number.MAX_SAFE_INTEGER,
      stream: "s".repeat(MAX_STREAM_EPOCH_LENGTH),
    } satisfies WireHeader,
  );
  const budget = maxBytes - utf8ByteLength(widest) - 1;
  return budget >= 0 && utf8Length(frame, budget) <= budget;
}
