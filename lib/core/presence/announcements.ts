/**
 * What presence says to other nodes on the bus: system envelopes of kind
 * {@linkcode PRESENCE_KIND}, one compact JSON object each, validated on the
 * way in (another node's bug must not become ours).
 *
 * @module
 */
import { z } from "zod";
import type { PresenceInfo } from "../auth.ts";
import type { SystemChannel } from "../../bus/types.ts";
import { PresenceInfoSchema } from "../../store/presence/types.ts";

/** The system envelope kind of presence traffic. */
export const PRESENCE_KIND = "presence";
/** The reserved room heartbeats travel on (client room names cannot contain `$`). */
export const PRESENCE_SYSTEM_ROOM = "$presence";

/** One user in a state answer: id, connections on the origin, `info` or null. */
const StateItem = z.tuple([z.string(), z.number().int(), PresenceInfoSchema.nullable()]);

/** A presence announcement. */
export const Announcement = z.discriminatedUnion("t", [
  /** Node `origin` now has `c` connections of user `u` in the room (0: none). */
  z.object({
    t: z.literal("u"),
    u: z.string(),
    c: z.number().int(),
    i: PresenceInfoSchema.optional(),
  }),
  /** A node got its first member in the room: answer with your state. */
  z.object({ t: z.literal("ask") }),
  /** Part of an answer to `ask`: the origin's users in the room; `r` replaces what was known. */
  z.object({ t: z.literal("s"), r: z.boolean(), m: z.array(StateItem) }),
  /** The origin is alive (on {@linkcode PRESENCE_SYSTEM_ROOM}). */
  z.object({ t: z.literal("hb") }),
]);
/** A presence announcement. */
export type Announcement = z.infer<typeof Announcement>;
/** One user in a state answer. */
export type StateItem = [string, number, PresenceInfo | null];

/** The heartbeat frame, serialized once. */
export const HEARTBEAT_FRAME: string = JSON.stringify({ t: "hb" } satisfies Announcement);

/** Reads an envelope's frame; undefined when it is not an announcement. */
export function parseAnnouncement(frame: string): Announcement | undefined {
  let value: unknown;
  try {
    value = JSON.parse(frame);
  } catch {
    return undefined;
  }
  const parsed = Announcement.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

/**
 * Publishes `message` on `room`'s bus channel; an announcement over the
 * bus's limit is reported instead.
 */
export function publishAnnouncement(
  bus: SystemChannel,
  room: string,
  message: Announcement,
  report: (err: unknown) => void,
): void {
  const frame = JSON.stringify(message);
  if (!bus.fits(room, frame)) {
    report(new RangeError(`presence announcement for ${room} is over the bus's limit`));
    return;
  }
  bus.publish(room, frame, { kind: PRESENCE_KIND });
}
