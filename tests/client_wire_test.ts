/**
 * The client package's copy of the wire types (`packages/client/src/wire.ts`)
 * stays equal to the server's definitions: the package cannot import the
 * server's zod-backed modules, so the compiler compares the two here, in
 * both directions, and `deno check` fails when one side changes alone.
 *
 * @module
 */
import assert from "node:assert/strict";
import type * as Client from "../packages/client/src/wire.ts";
import * as ClientCodes from "../packages/client/src/codes.ts";
import { CloseCode, type ErrorCode } from "../lib/codes.ts";
import type { JsonValue, ServerMessage } from "../lib/protocols/native/protocol.ts";

/** `true` only when `A` and `B` are the same type (not merely assignable one way). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true
  : false;

/** Compiles only for `true`. */
function same<T extends true>(_proof: T): void {}

Deno.test("the client's wire types are the server's", () => {
  same<Equal<Client.JsonValue, JsonValue>>(true);
  same<Equal<Client.ErrorCode, ErrorCode>>(true);
  same<Equal<Client.CloseCode, CloseCode>>(true);
  same<Equal<Client.ServerMessage["type"], ServerMessage["type"]>>(true);
  // Member by member, so that a failure names the message that drifted.
  type Each<K extends ServerMessage["type"]> = Equal<
    Extract<Client.ServerMessage, { type: K }>,
    Extract<ServerMessage, { type: K }>
  >;
  same<Each<"welcome">>(true);
  same<Each<"joined">>(true);
  same<Each<"left">>(true);
  same<Each<"message">>(true);
  same<Each<"ack">>(true);
  same<Each<"history">>(true);
  same<Each<"presence_state">>(true);
  same<Each<"presence_diff">>(true);
  same<Each<"pong">>(true);
  same<Each<"expiring">>(true);
  same<Each<"refreshed">>(true);
  same<Each<"rpc_result">>(true);
  same<Each<"error">>(true);
  // The close codes the reconnect decision turns on, by value.
  assert.equal(ClientCodes.CLOSE_NORMAL, CloseCode.Normal);
  assert.equal(ClientCodes.CLOSE_TOKEN_EXPIRED, CloseCode.TokenExpired);
  assert.equal(ClientCodes.CLOSE_FORBIDDEN, CloseCode.Forbidden);
});
