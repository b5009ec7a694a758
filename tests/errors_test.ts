import assert from "node:assert/strict";
import { errorMessage, toError } from "../lib/errors.ts";

Deno.test("errorMessage: the message, else the name, else the thrown value as text", () => {
  assert.equal(errorMessage(new TypeError("bad input")), "bad input");
  assert.equal(errorMessage(new RangeError()), "RangeError");
  assert.equal(errorMessage("a string was thrown"), "a string was thrown");
  assert.equal(errorMessage(42), "42");
});

Deno.test("toError: an Error as is, anything else wrapped with it as the cause", () => {
  const err = new Error("x");
  assert.equal(toError(err), err);
  const wrapped = toError({ code: 7 });
  assert.ok(wrapped instanceof Error);
  assert.equal(wrapped.message, "[object Object]");
  assert.deepEqual(wrapped.cause, { code: 7 });
});
