/**
 * The README's example hook backend (`examples/hooks/backend.ts`) run as
 * users run it, in its own process, in front of a real server: it refuses a
 * suspended user, grants a private group room to its members only,
 * moderates chat, and answers an RPC.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connectAs, rawHandshake, startServer, token, writePolicy } from "./_helpers.ts";
import { freePort, spawnServer } from "./_process.ts";

const HOOK_SECRET = "example-hook-secret-long-enough-0123456";

Deno.test("examples/hooks/backend.ts: connect, join, publish and rpc against a real server", async () => {
  const port = freePort();
  await using backend = await spawnServer(
    ["run", "--allow-net", "--allow-env", "examples/hooks/backend.ts"],
    { port, env: { WEBHOOK_SECRET: HOOK_SECRET, PORT: String(port) } },
  );
  await using policy = await writePolicy([{ room: "group:*", hook: true }]);
  await using ts = await startServer({
    ROOM_POLICY: policy.path,
    WEBHOOK_SECRET: HOOK_SECRET,
    HOOK_CONNECT_URL: `${backend.httpUrl}/connect`,
    HOOK_JOIN_URL: `${backend.httpUrl}/join`,
    HOOK_PUBLISH_URL: `${backend.httpUrl}/publish`,
    HOOK_RPC_URL: `${backend.httpUrl}/rpc`,
  });
  const suspended = await rawHandshake(ts.port, `/ws?token=${await token("mallory")}`);
  assert.equal(suspended.status, 403);
  assert.equal(suspended.body.trim(), "this account is suspended");
  const alice = await connectAs(ts, "alice", { rooms: [] });
  const carol = await connectAs(ts, "carol", { rooms: [] });
  try {
    assert.equal(
      (await alice.request({ type: "join", room: "group:founders", id: "j" })).type,
      "joined",
    );
    const denied = await carol.request({ type: "join", room: "group:founders", id: "j" });
    assert.equal(denied.code, "forbidden");
    assert.equal(denied.message, "not a member of this group");
    const spam = await alice.request({
      type: "message",
      room: "group:founders",
      payload: { text: "buy spam now" },
      id: "s",
    });
    assert.equal(spam.message, "no spam, please");
    alice.send({ type: "message", room: "group:founders", payload: { text: "hello" }, id: "h" });
    const echoed = await alice.next((m) => m.type === "message");
    assert.deepEqual(echoed.payload, { text: "hello", moderated: true });
    const groups = await alice.request({ type: "rpc", method: "groups", payload: null, id: "r" });
    assert.deepEqual(groups.payload, ["group:founders"]);
  } finally {
    await alice.close();
    await carol.close();
  }
});
