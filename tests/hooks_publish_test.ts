/**
 * The publish and RPC hooks through a whole server and a real backend: a
 * message to a room whose policy rule sets `"hook": true` is rejected
 * (`forbidden` with the backend's reason) or rewritten before anyone sees
 * it, a rewritten payload over the limits is `bad_request`, a failed call is
 * `unavailable`, the publisher's order holds while calls are in flight, and
 * rooms without the rule never reach the backend; `rpc` round-trips.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  collectRoom,
  connectAs,
  eventually,
  join,
  sleep,
  startServer,
  token,
  writePolicy,
} from "./_helpers.ts";
import { answer, startHookBackend } from "./_hook_backend.ts";
import { connect as connectClient, RealtimeError } from "../packages/client/src/client.ts";

const HOOK_SECRET = "hook-secret-that-is-long-enough-012345";

Deno.test("publish hook: rejects one message, rewrites another, keeps the publisher's order", async () => {
  await using backend = startHookBackend(HOOK_SECRET, async (call) => {
    const payload = call.json.payload as { text?: string; n?: number };
    if (payload.text === "spam") return answer({ allow: false, reason: "no spam here" });
    if (payload.text === "darn") return answer({ allow: true, payload: { text: "d**n" } });
    if (payload.text === "deep") return answer({ allow: true, payload: [[[[[[1]]]]]] });
    if (payload.text === "down") return answer({}, 500);
    // Later messages answer sooner: the order must come from the server, not the backend.
    await sleep(Math.max(0, 50 - 10 * (payload.n ?? 0)));
    return answer({ allow: true });
  });
  await using policy = await writePolicy([
    { room: "chat:quiet", users: "*", hook: false },
    { room: "chat:*", users: "*", hook: true },
  ]);
  await using ts = await startServer({
    ROOM_POLICY: policy.path,
    HOOK_PUBLISH_URL: `${backend.url}/publish`,
    WEBHOOK_SECRET: HOOK_SECRET,
    MAX_PAYLOAD_DEPTH: "4",
  });
  const alice = await connectAs(ts, "alice", { rooms: [] });
  const bob = await connectAs(ts, "bob", { rooms: [] });
  try {
    for (const c of [alice, bob]) {
      await join(c, "chat:1");
      await join(c, "chat:quiet");
    }
    const seen = collectRoom(bob, "chat:1");
    const spam = await alice.request({
      type: "message",
      room: "chat:1",
      payload: { text: "spam" },
      id: "s",
    });
    assert.equal(spam.code, "forbidden");
    assert.equal(spam.message, "no spam here");
    const darn = await alice.request({
      type: "message",
      room: "chat:1",
      payload: { text: "darn" },
      id: "d",
    });
    assert.equal(darn.type, "ack");
    const deep = await alice.request({
      type: "message",
      room: "chat:1",
      payload: { text: "deep" },
      id: "x",
    });
    assert.equal(deep.code, "bad_request");
    const down = await alice.request({
      type: "message",
      room: "chat:1",
      payload: { text: "down" },
      id: "u",
    });
    assert.equal(down.code, "unavailable");
    // Five in a row, answered by the backend in reverse order, plus one to an unhooked room.
    for (let n = 0; n < 5; n++) {
      alice.send({ type: "message", room: "chat:1", payload: { n }, id: `n${n}` });
    }
    await alice.request({ type: "message", room: "chat:quiet", payload: { after: true }, id: "q" });
    await eventually(() => seen.length === 6, 3000, "six messages");
    assert.deepEqual(seen.map((m) => m.payload), [
      { text: "d**n" },
      { n: 0 },
      { n: 1 },
      { n: 2 },
      { n: 3 },
      { n: 4 },
    ]);
    assert.ok(
      backend.calls.every((c) => c.signed && c.json.room === "chat:1"),
      "chat:quiet is never asked",
    );
    assert.ok(ts.audit.of("hook_denied").some((r) => r.reason === "no spam here"));
  } finally {
    await alice.close();
    await bob.close();
  }
});

Deno.test("rpc: a round trip through the backend, its errors, and no backend", async () => {
  await using backend = startHookBackend(HOOK_SECRET, async (call) => {
    if (call.json.method === "sum") {
      const [a, b] = call.json.payload as number[];
      return answer({ payload: { sum: a! + b! } });
    }
    if (call.json.method === "bad") return answer({ payload: undefined, nope: 1 });
    if (call.json.method === "empty") {
      return answer({ error: { code: "cart_empty", message: "the cart is empty" } });
    }
    if (call.json.method === "plain") return answer({ error: { message: "no luck" } });
    if (call.json.method === "mine") {
      return answer({ error: { code: "forbidden", message: "not your cart" } });
    }
    if (call.json.method === "slow") await sleep(400);
    return answer({ error: { code: "not_found", message: "unknown method" } });
  });
  await using ts = await startServer({
    HOOK_RPC_URL: `${backend.url}/rpc`,
    WEBHOOK_SECRET: HOOK_SECRET,
    HOOK_TIMEOUT_MS: "150",
  });
  const alice = await connectAs(ts, "alice");
  try {
    const result = await alice.request({ type: "rpc", method: "sum", payload: [2, 3], id: "r1" });
    assert.deepEqual(result, { type: "rpc_result", id: "r1", payload: { sum: 5 } });
    const call = backend.calls[0]!;
    assert.ok(call.signed);
    assert.equal(call.json.method, "sum");
    assert.equal(call.json.userId, "alice");
    const rpc = (method: string, id: string) =>
      alice.request({ type: "rpc", method, payload: null, id });
    // The backend's own code reaches the client when it is one of ours.
    assert.deepEqual(await rpc("nope", "r2"), {
      type: "error",
      code: "not_found",
      message: "unknown method",
      id: "r2",
    });
    assert.deepEqual(
      [(await rpc("mine", "r4")).code, (await rpc("mine", "r4b")).message],
      ["forbidden", "not your cart"],
    );
    // Any other code, or none: `rpc_error`, the app's code kept before its message.
    const empty = await rpc("empty", "r5");
    assert.deepEqual([empty.code, empty.message], ["rpc_error", "cart_empty: the cart is empty"]);
    const plain = await rpc("plain", "r6");
    assert.deepEqual([plain.code, plain.message, plain.id], ["rpc_error", "no luck", "r6"]);
    const bad = await rpc("bad", "r3");
    assert.equal(bad.type, "error");
    assert.equal(bad.code, "unavailable", "a wrong shape is a failed call");
    const slow = await rpc("slow", "r7");
    assert.deepEqual([slow.code, slow.id], ["unavailable", "r7"], "a timeout is unavailable");
  } finally {
    await alice.close();
  }
  await using none = await startServer();
  const bob = await connectAs(none, "bob");
  try {
    const reply = await bob.request({ type: "rpc", method: "sum", payload: [1], id: "r" });
    assert.equal(reply.code, "not_found");
    assert.match(String(reply.message), /HOOK_RPC_URL/);
  } finally {
    await bob.close();
  }
});

Deno.test("rpc: the browser client's rpc(method, payload), rate-limited like publishes", async () => {
  await using backend = startHookBackend(
    HOOK_SECRET,
    (call) => answer({ payload: { echo: call.json.payload, method: call.json.method } }),
  );
  await using ts = await startServer({
    HOOK_RPC_URL: `${backend.url}/rpc`,
    WEBHOOK_SECRET: HOOK_SECRET,
    RATE_LIMIT_CAPACITY: "3",
    RATE_LIMIT_REFILL_PER_SEC: "1",
  });
  const rt = connectClient(ts.wsUrl, { token: await token("alice") });
  try {
    assert.deepEqual(await rt.rpc("cart.total", { cart: 7 }), {
      echo: { cart: 7 },
      method: "cart.total",
    });
    await assert.rejects(
      Promise.all([rt.rpc("a"), rt.rpc("b"), rt.rpc("c")]),
      (e: unknown) => e instanceof RealtimeError && e.code === "rate_limited",
    );
  } finally {
    await rt.close();
  }
});
