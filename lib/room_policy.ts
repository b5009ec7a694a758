/**
 * Who may join and publish to which room: the token's `rooms` /
 * `rooms_readonly` claims and the server's policy file. Default deny: a room
 * nobody grants cannot be joined.
 *
 * @module
 */
import { z } from "zod";
import type { Principal } from "./auth.ts";

/** Access a connection has to one room. */
export type RoomAccess = "none" | "read" | "publish";

/**
 * Compiles a room pattern: `*` matches any run of characters (including none),
 * `{sub}` stands for the user id, taken literally (a `*` in a user id is not a
 * wildcard). Everything else matches itself.
 *
 * @example
 * ```ts
 * import { compilePattern } from "./room_policy.ts";
 * compilePattern("user:{sub}:*", "alice").test("user:alice:inbox"); // true
 * ```
 */
export function compilePattern(pattern: string, userId: string): RegExp {
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
  const body = pattern.split("{sub}").map((part) => part.split("*").map(escape).join(".*"))
    .join(escape(userId));
  const source = `^${body}$`;
  let re = compiled.get(source);
  if (re === undefined) {
    // Thousands of connections usually carry the same few patterns: share them.
    if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
    re = new RegExp(source);
    compiled.set(source, re);
  }
  return re;
}

/** Most compiled patterns kept; the oldest is dropped past it. */
const MAX_COMPILED = 10_000;
const compiled = new Map<string, RegExp>();

const UserList = z.union([z.literal("*"), z.array(z.string().min(1).max(256)).max(100_000)]);

/** One rule of the policy file. */
export const RoomRule = z.strictObject({
  /** Room name or pattern (`*`, `{sub}`). */
  room: z.string().min(1).max(256),
  /** Who may join (and publish, unless `publishers` is set): user ids, or `"*"` for every authenticated user. */
  users: UserList.optional(),
  /** When set, only these may publish (they may also join); other `users` are read-only. */
  publishers: UserList.optional(),
});
/** A policy rule. */
export type RoomRule = z.infer<typeof RoomRule>;

/** The `ROOM_POLICY` file: an ordered list of rules; every matching rule adds access. */
export const RoomPolicyFile = z.strictObject({
  $schema: z.string().optional(),
  rooms: z.array(RoomRule).max(10_000),
});
/** The parsed policy file. */
export type RoomPolicyFile = z.infer<typeof RoomPolicyFile>;

function listed(list: RoomRule["users"], userId: string): boolean {
  return list === "*" || (list !== undefined && list.includes(userId));
}

/** Decides room access for a principal; built once per connection (patterns compiled once). */
export class RoomPolicy {
  readonly #rules: readonly RoomRule[];

  /** @param file a validated policy; the empty policy grants nothing beyond the tokens' claims */
  constructor(file: RoomPolicyFile = { rooms: [] }) {
    this.#rules = file.rooms;
  }

  /**
   * Parses and validates a policy document.
   *
   * @throws {TypeError} with a message naming the bad rule
   */
  static parse(json: string): RoomPolicy {
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch (err) {
      throw new TypeError(`Cannot parse room policy: ${(err as Error).message}`);
    }
    const result = RoomPolicyFile.safeParse(value);
    if (!result.success) {
      const issue = result.error.issues[0];
      throw new TypeError(
        `Cannot load room policy: ${issue?.path.join(".") || "(root)"}: ${issue?.message}`,
      );
    }
    return new RoomPolicy(result.data);
  }

  /** Builds the access function for one principal. */
  forPrincipal(principal: Principal): (room: string) => RoomAccess {
    const uid = principal.userId;
    const publish = principal.rooms.map((p) => compilePattern(p, uid));
    const read = principal.roomsReadonly.map((p) => compilePattern(p, uid));
    const rules = this.#rules.map((rule) => ({
      re: compilePattern(rule.room, uid),
      join: listed(rule.users, uid) || listed(rule.publishers, uid),
      publish: rule.publishers === undefined
        ? listed(rule.users, uid)
        : listed(rule.publishers, uid),
    })).filter((r) => r.join);
    return (room) => {
      let access: RoomAccess = "none";
      for (const re of publish) if (re.test(room)) return "publish";
      for (const rule of rules) {
        if (!rule.re.test(room)) continue;
        if (rule.publish) return "publish";
        access = "read";
      }
      if (access === "none") { for (const re of read) if (re.test(room)) return "read"; }
      return access;
    };
  }
}
