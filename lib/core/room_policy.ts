/**
 * Who may join and publish to which room: the token's `rooms` /
 * `rooms_readonly` claims and the server's policy file. Default deny: a room
 * nobody grants cannot be joined.
 *
 * @module
 */
import { z } from "zod";
import type { Principal } from "./auth.ts";
import type { HistoryLimits } from "../store/history/types.ts";
import { errorMessage } from "../errors.ts";

/** Access a connection has to one room. */
export type RoomAccess = "none" | "read" | "publish";

/**
 * A compiled room pattern. Matching runs in O(pattern × name) at worst and
 * never backtracks: patterns come from tokens and the policy file, room names
 * from any client, and a backtracking regular expression (`*` as `.*`) let
 * `*a*a*a*a*a*a*a*a*b` against 60 `a`s freeze the isolate for over a minute.
 */
export interface RoomPattern {
  /** Whether `room` matches the whole pattern. */
  test(room: string): boolean;
}

/**
 * A glob of literal pieces separated by `*`. The first piece must start the
 * name, the last must end it, and the middle ones are found leftmost-first in
 * order: with no other wildcard than `*`, the leftmost place of each piece is
 * never worse than a later one, so no choice is ever revisited (each
 * `indexOf` is at worst O(name × piece), O(name × pattern) in all).
 */
class WildcardPattern implements RoomPattern {
  readonly #pieces: readonly string[];
  readonly #minLength: number;

  constructor(pieces: readonly string[]) {
    this.#pieces = pieces;
    this.#minLength = pieces.reduce((n, p) => n + p.length, 0);
  }

  test(room: string): boolean {
    const pieces = this.#pieces;
    const last = pieces.length - 1;
    const first = pieces[0]!;
    if (last === 0) return room === first;
    if (room.length < this.#minLength) return false;
    if (!room.startsWith(first)) return false;
    const tail = pieces[last]!;
    const end = room.length - tail.length;
    if (!room.endsWith(tail)) return false;
    let at = first.length;
    for (let i = 1; i < last; i++) {
      const piece = pieces[i]!;
      if (piece.length === 0) continue;
      const found = room.indexOf(piece, at);
      if (found === -1 || found + piece.length > end) return false;
      at = found + piece.length;
    }
    return true;
  }
}

/**
 * Splits a pattern into literal pieces around its `*`s, with `{sub}` replaced
 * by the user id inside the pieces, so a `*` in a user id stays literal.
 */
function piecesOf(pattern: string, userId: string): string[] {
  const pieces: string[] = [];
  for (const [i, part] of pattern.split("{sub}").entries()) {
    const stars = part.split("*");
    if (i === 0) {
      pieces.push(...stars);
      continue;
    }
    // `{sub}` joins the last piece so far with the first piece of this part.
    pieces[pieces.length - 1] += userId + stars[0];
    pieces.push(...stars.slice(1));
  }
  return pieces;
}

/**
 * Compiles a room pattern: `*` matches any run of characters (including none),
 * `{sub}` stands for the user id, taken literally (a `*` in a user id is not a
 * wildcard). Everything else matches itself. Matching takes linear-ish time
 * (O(pattern × name) at worst), whatever the pattern.
 *
 * @example
 * ```ts
 * import { compilePattern } from "./room_policy.ts";
 * compilePattern("user:{sub}:*", "alice").test("user:alice:inbox"); // true
 * ```
 */
export function compilePattern(pattern: string, userId: string): RoomPattern {
  const pieces = piecesOf(pattern, userId);
  // JSON keeps a user id holding `*` or quotes apart from a real wildcard.
  const key = JSON.stringify(pieces);
  let compiledPattern = compiled.get(key);
  if (compiledPattern === undefined) {
    // Thousands of connections usually carry the same few patterns: share them.
    if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
    compiledPattern = new WildcardPattern(pieces);
    compiled.set(key, compiledPattern);
  }
  return compiledPattern;
}

/** Most compiled patterns kept; the oldest is dropped past it. */
const MAX_COMPILED = 10_000;
const compiled = new Map<string, RoomPattern>();

const UserList = z.union([z.literal("*"), z.array(z.string().min(1).max(256)).max(100_000)]);

/**
 * Characters some room can hold: the native protocol's room names, and the
 * Pusher front door's channel rooms. A rule naming any other character
 * could never match, so it is refused rather than ignored.
 */
const ROOM_CHARACTERS = /^[A-Za-z0-9_\-.:@/=,;~]*$/;

/** Room name or pattern of a rule: 1–256 characters that some room name can hold, plus `*` and `{sub}`. */
const RulePattern = z.string().min(1).max(256).refine(
  (room) => ROOM_CHARACTERS.test(room.replaceAll("{sub}", "").replaceAll("*", "")),
  "matches no room: room names are made of A-Z a-z 0-9 _ - . : @ / (patterns add * and {sub})",
);

/** One rule of the policy file. */
export const RoomRule = z.strictObject({
  /** Room name or pattern (`*`, `{sub}`). */
  room: RulePattern,
  /** Who may join (and publish, unless `publishers` is set): user ids, or `"*"` for every authenticated user. */
  users: UserList.optional(),
  /** When set, only these may publish (they may also join); other `users` are read-only. */
  publishers: UserList.optional(),
  /**
   * History for the rooms this rule matches: `{size, ttlSec}`, or `false` for
   * none. The first rule (in file order) that matches a room and sets it
   * decides; otherwise `HISTORY_SIZE` and `HISTORY_TTL_SEC` do.
   */
  history: z.union([
    z.literal(false),
    z.strictObject({
      size: z.number().int().min(1).max(10_000),
      ttlSec: z.number().int().min(1).max(7 * 86_400),
    }),
  ]).optional(),
  /**
   * Presence for the rooms this rule matches. The first rule (in file order)
   * that matches a room and sets it decides; otherwise `PRESENCE` does.
   */
  presence: z.boolean().optional(),
  /**
   * Whether messages published to the rooms this rule matches are sent to
   * the webhooks (`message_published`). The first rule (in file order) that
   * matches a room and sets it decides; otherwise no.
   */
  webhook: z.boolean().optional(),
  /**
   * Whether messages published to the rooms this rule matches are asked of
   * the publish hook (`HOOK_PUBLISH_URL`) first. The first rule (in file
   * order) that matches a room and sets it decides; otherwise no.
   */
  hook: z.boolean().optional(),
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

/** What each rule field must be, for error messages. */
const EXPECTED: Readonly<Record<string, string>> = {
  room: 'must be a room name or pattern of 1–256 characters, e.g. "chat:*"',
  users: 'must be "*" (every authenticated user) or an array of user ids, e.g. ["alice","bob"]',
  publishers: 'must be "*" or an array of user ids, e.g. ["alice"]',
  history:
    'must be false or {"size": 1–10000, "ttlSec": 1–604800}, e.g. {"size":100,"ttlSec":3600}',
  presence: "must be true or false",
  webhook: "must be true or false",
  hook: "must be true or false",
};

/**
 * One zod issue of the policy file as a person reads it: rules counted from
 * one and named by their `room`, the field, and the shape it should have.
 */
function describeIssue(file: unknown, issue: z.core.$ZodIssue): string {
  const [top, index, field] = issue.path;
  if (top !== "rooms" || typeof index !== "number") {
    return `${issue.path.join(".") || "(root)"}: ${issue.message}`;
  }
  const rule = (file as { rooms: unknown[] }).rooms[index];
  const room = (rule as { room?: unknown } | null)?.room;
  const name = typeof room === "string" ? ` (room ${JSON.stringify(room)})` : "";
  if (field === undefined) return `rule ${index + 1}${name}: ${issue.message}`;
  const key = String(field);
  const custom = issue.code === "custom" || issue.code === "unrecognized_keys";
  const expected = custom ? issue.message : EXPECTED[key] ?? issue.message;
  return `rule ${index + 1}${name}: ${key}: ${expected}`;
}

function listed(list: RoomRule["users"], userId: string): boolean {
  return list === "*" || (list !== undefined && list.includes(userId));
}

/** Most rooms whose history setting is remembered; the oldest is recomputed past it. */
const MAX_SETTINGS_CACHED = 10_000;

/** Room settings a rule may set, decided by the first matching rule that sets them. */
type RoomSetting = "history" | "presence" | "webhook" | "hook";

/** The rules that set `field`, in file order, with user-independent matchers (`{sub}` matches any user). */
function rulesSetting<K extends RoomSetting>(
  rules: readonly RoomRule[],
  field: K,
): { re: RoomPattern; value: NonNullable<RoomRule[K]> }[] {
  const out: { re: RoomPattern; value: NonNullable<RoomRule[K]> }[] = [];
  for (const rule of rules) {
    const value = rule[field];
    if (value === undefined) continue;
    out.push({ re: compilePattern(rule.room.replaceAll("{sub}", "*"), ""), value });
  }
  return out;
}

/** The value of the first rule that matches `room`, or `undefined` when none does. */
function firstSetting<T>(
  rules: readonly { re: RoomPattern; value: T }[],
  room: string,
): T | undefined {
  for (const rule of rules) if (rule.re.test(room)) return rule.value;
  return undefined;
}

/** Remembers a room's computed setting, dropping the oldest past {@linkcode MAX_SETTINGS_CACHED}. */
function remember<T>(cache: Map<string, T>, room: string, value: T): T {
  if (cache.size >= MAX_SETTINGS_CACHED) cache.delete(cache.keys().next().value!);
  cache.set(room, value);
  return value;
}

/** Decides room access for a principal; built once per connection (patterns compiled once). */
export class RoomPolicy {
  readonly #rules: readonly RoomRule[];
  /** Rules that set `history`, with a user-independent matcher (`{sub}` matches any user). */
  readonly #historyRules: readonly { re: RoomPattern; history: RoomRule["history"] }[];
  readonly #historyCache = new Map<string, HistoryLimits | null>();
  readonly #presenceRules: readonly { re: RoomPattern; value: boolean }[];
  readonly #presenceCache = new Map<string, boolean>();
  readonly #webhookRules: readonly { re: RoomPattern; value: boolean }[];
  readonly #webhookCache = new Map<string, boolean>();
  readonly #hookRules: readonly { re: RoomPattern; value: boolean }[];
  readonly #hookCache = new Map<string, boolean>();

  /** @param file a validated policy; the empty policy grants nothing beyond the tokens' claims */
  constructor(file: RoomPolicyFile = { rooms: [] }) {
    this.#rules = file.rooms;
    this.#historyRules = file.rooms.filter((rule) => rule.history !== undefined).map((rule) => ({
      re: compilePattern(rule.room.replaceAll("{sub}", "*"), ""),
      history: rule.history,
    }));
    this.#presenceRules = rulesSetting(file.rooms, "presence");
    this.#webhookRules = rulesSetting(file.rooms, "webhook");
    this.#hookRules = rulesSetting(file.rooms, "hook");
  }

  /**
   * Whether messages of `room` are asked of the publish hook first: the
   * first rule that matches it and sets `hook` decides, otherwise no.
   * Cached per room.
   *
   * @example
   * ```ts
   * import { RoomPolicy } from "./room_policy.ts";
   * const policy = RoomPolicy.parse('{"rooms":[{"room":"chat:*","hook":true}]}');
   * policy.hookFor("chat:1"); // true
   * ```
   */
  hookFor(room: string): boolean {
    if (this.#hookRules.length === 0) return false;
    const cached = this.#hookCache.get(room);
    if (cached !== undefined) return cached;
    return remember(this.#hookCache, room, firstSetting(this.#hookRules, room) ?? false);
  }

  /**
   * Whether messages of `room` go to the webhooks (`message_published`): the
   * first rule that matches it and sets `webhook` decides, otherwise no.
   * Cached per room.
   *
   * @example
   * ```ts
   * import { RoomPolicy } from "./room_policy.ts";
   * const policy = RoomPolicy.parse('{"rooms":[{"room":"orders:*","webhook":true}]}');
   * policy.webhookFor("orders:1"); // true
   * ```
   */
  webhookFor(room: string): boolean {
    if (this.#webhookRules.length === 0) return false;
    const cached = this.#webhookCache.get(room);
    if (cached !== undefined) return cached;
    return remember(this.#webhookCache, room, firstSetting(this.#webhookRules, room) ?? false);
  }

  /** Whether any rule turns presence on for the rooms it matches. */
  get hasPresenceRules(): boolean {
    return this.#presenceRules.some((rule) => rule.value);
  }

  /**
   * Whether `room` tracks presence: the first rule that matches it and sets
   * `presence` decides, otherwise `fallback` (`PRESENCE`). Cached per room.
   *
   * @example
   * ```ts
   * import { RoomPolicy } from "./room_policy.ts";
   * const policy = RoomPolicy.parse('{"rooms":[{"room":"chat:*","presence":true}]}');
   * policy.presenceFor("chat:1", false); // true
   * ```
   */
  presenceFor(room: string, fallback: boolean): boolean {
    const cached = this.#presenceCache.get(room);
    if (cached !== undefined) return cached;
    return remember(this.#presenceCache, room, firstSetting(this.#presenceRules, room) ?? fallback);
  }

  /** Whether any rule turns history on for the rooms it matches. */
  get hasHistoryRules(): boolean {
    return this.#historyRules.some((rule) => rule.history !== false);
  }

  /**
   * The history limits of `room`: the first rule that matches it and sets
   * `history` decides, otherwise `defaults` (`null`: no history). Cached per
   * room, since it is asked on every publish.
   *
   * @example
   * ```ts
   * import { RoomPolicy } from "./room_policy.ts";
   * const policy = RoomPolicy.parse('{"rooms":[{"room":"chat:*","history":{"size":200,"ttlSec":3600}}]}');
   * policy.historyFor("chat:1", null); // { size: 200, ttlMs: 3600000 }
   * ```
   */
  historyFor(room: string, defaults: HistoryLimits | null): HistoryLimits | null {
    const cached = this.#historyCache.get(room);
    if (cached !== undefined) return cached;
    let limits = defaults;
    for (const rule of this.#historyRules) {
      if (!rule.re.test(room)) continue;
      limits = rule.history === false || rule.history === undefined
        ? null
        : { size: rule.history.size, ttlMs: rule.history.ttlSec * 1000 };
      break;
    }
    if (this.#historyCache.size >= MAX_SETTINGS_CACHED) {
      this.#historyCache.delete(this.#historyCache.keys().next().value!);
    }
    this.#historyCache.set(room, limits);
    return limits;
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
      throw new TypeError(`Cannot parse room policy: ${errorMessage(err)}`);
    }
    const result = RoomPolicyFile.safeParse(value);
    if (!result.success) {
      const problems = result.error.issues.slice(0, 3).map((issue) => describeIssue(value, issue));
      throw new TypeError(`Cannot load room policy: ${problems.join("; ")}`);
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
