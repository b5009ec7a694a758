/**
 * JSON text as every protocol receives and relays it: UTF-8 sizes, nesting
 * depth and `__proto__` keys. Nothing here knows a wire format.
 *
 * @module
 */
/** UTF-8 size of `text` (a lone surrogate counts 3 bytes, as `TextEncoder` writes U+FFFD). */
export function utf8ByteLength(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/**
 * UTF-8 size of `text`, computed exactly only when it matters: a string of
 * more than `limit` UTF-16 units is over it, and one of at most `limit / 3`
 * units is under it, whatever its characters.
 */
export function utf8Length(text: string, limit: number): number {
  if (text.length > limit || text.length * 3 <= limit) return text.length;
  return utf8ByteLength(text);
}

const OPEN_BRACKET = 0x5b; // [
const OPEN_BRACE = 0x7b; // {
const CLOSE_BRACKET = 0x5d; // ]
const CLOSE_BRACE = 0x7d; // }
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/**
 * Whether a JSON text nests arrays/objects deeper than `maxDepth`. One pass,
 * no recursion, no allocation: strings are skipped with `indexOf` (a quote
 * after an odd run of backslashes is escaped). Malformed JSON gives some
 * answer; `JSON.parse` refuses it anyway.
 *
 * Deep nesting is harmless to us (V8's `JSON.parse` does not recurse) but
 * crashes the recursive parsers of the clients we would relay it to (Python's
 * `json.loads` raises `RecursionError` around 1,000 levels).
 *
 * @example
 * ```ts
 * import { jsonDeeperThan } from "./json.ts";
 * jsonDeeperThan('{"a":[[1]]}', 2); // true: 3 levels
 * ```
 */
export function jsonDeeperThan(text: string, maxDepth: number): boolean {
  // Each level costs at least one character.
  if (text.length <= maxDepth) return false;
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      for (;;) {
        const close = text.indexOf('"', i + 1);
        if (close === -1) return false;
        i = close;
        let slashes = 0;
        while (text.charCodeAt(close - 1 - slashes) === BACKSLASH) slashes++;
        if ((slashes & 1) === 0) break;
      }
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    }
  }
  return false;
}

/** True when a JSON text could smuggle a `__proto__` key past a plain substring test. */
function mayHideProtoKey(text: string): boolean {
  return text.includes("__proto__") || text.includes("\\u");
}

/** A JSON text has a `__proto__` key, which nothing we relay may carry. */
export class ProtoKeyError extends Error {
  /** @param options the cause, if any */
  constructor(options?: ErrorOptions) {
    super("__proto__ keys are not allowed", options);
    this.name = "ProtoKeyError";
  }
}

function rejectProtoKeys(key: string, value: unknown): unknown {
  if (key === "__proto__") throw new ProtoKeyError();
  return value;
}

/**
 * `JSON.parse`, refusing a `__proto__` key anywhere (however it is escaped):
 * harmless to us, but a classic prototype-pollution vector for the clients
 * we would relay it to. Costs nothing extra unless the text contains
 * `__proto__` or a `\u` escape.
 *
 * @throws {ProtoKeyError} for a `__proto__` key
 * @throws {SyntaxError} for text that is not JSON
 *
 * @example
 * ```ts
 * import { parseJsonRefusingProto } from "./json.ts";
 * parseJsonRefusingProto('{"text":"__proto__"}'); // fine: a value, not a key
 * ```
 */
export function parseJsonRefusingProto(text: string): unknown {
  return mayHideProtoKey(text) ? JSON.parse(text, rejectProtoKeys) : JSON.parse(text);
}

/**
 * Why a JSON value may not be relayed to clients, or `undefined` when it may:
 * the checks of client frames (a `__proto__` key anywhere, arrays/objects
 * nested deeper than `maxDepth`) for JSON that reached us another way (a
 * token claim). The value itself counts as one level when it is an array or
 * object.
 *
 * @example
 * ```ts
 * import { relayProblem } from "./json.ts";
 * relayProblem({ a: { b: {} } }, 2); // "nests arrays/objects deeper than 2 levels"
 * ```
 */
export function relayProblem(value: unknown, maxDepth: number): string | undefined {
  const text = JSON.stringify(value) ?? "null";
  if (jsonDeeperThan(text, maxDepth)) return `nests arrays/objects deeper than ${maxDepth} levels`;
  try {
    parseJsonRefusingProto(text);
  } catch (err) {
    if (err instanceof ProtoKeyError) return err.message;
    throw err;
  }
  return undefined;
}
