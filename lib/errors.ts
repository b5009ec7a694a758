/**
 * What a caught value says, for logs, audit records and health details: a
 * `catch` binds `unknown`, and anything can be thrown.
 *
 * @module
 */

/**
 * The message of an error, its name when the message is empty, or the
 * thrown value as a string when it is not an `Error`.
 *
 * @example
 * ```ts
 * import { errorMessage } from "./errors.ts";
 * errorMessage(new TypeError("bad")); // "bad"
 * errorMessage("plain string"); // "plain string"
 * ```
 */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}

/** The caught value as an `Error`: itself, or a new one carrying its string form (and it as `cause`). */
export function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err), { cause: err });
}
