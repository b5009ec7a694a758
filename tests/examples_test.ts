import assert from "node:assert/strict";
import { RoomPolicy } from "../lib/core/room_policy.ts";

Deno.test("the example room policy in the README is valid and means what the README says", async () => {
  const policy = RoomPolicy.parse(
    await Deno.readTextFile(new URL("../examples/room_policy.json", import.meta.url)),
  );
  const principal = (sub: string) => ({
    userId: sub,
    expiresAt: null,
    rooms: [],
    roomsReadonly: [],
    roles: [],
  });
  const alice = policy.forPrincipal(principal("alice"));
  const carol = policy.forPrincipal(principal("carol"));
  const editor = policy.forPrincipal(principal("editor"));
  assert.equal(carol("lobby"), "publish");
  assert.equal(alice("team:alpha"), "publish");
  assert.equal(carol("team:alpha"), "none");
  assert.equal(carol("announcements"), "read");
  assert.equal(editor("announcements"), "publish");
  assert.equal(carol("user:carol:inbox"), "read");
  assert.equal(carol("user:alice:inbox"), "none");
  assert.equal(alice("doc:plan"), "publish");
  assert.equal(carol("doc:plan"), "none");
  assert.equal(carol("unlisted"), "none", "default deny");
});
