/**
 * The connect hook through a whole server and a real backend: a refusal is
 * the HTTP answer (the backend's status and reason, no socket), a grant adds
 * rooms the token lacks, a failed or slow backend refuses with 503 (or lets
 * the token in with `HOOK_CONNECT_FAIL=open`), requests are signed, name the
 * connection's `welcome` id and never carry the token.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, rawHandshake, startServer, token, writePolicy } from "./_helpers.ts";
import { answer, startHookBackend } from "./_hook_backend.ts";
import { ConfigError, loadConfig } from "../lib/config.ts";

const HOOK_SECRET = "hook-secret-that-is-long-enough-012345";

Deno.test("connect hook: the backend's refusal is the HTTP answer, before any socket", async () => {
  await using backend = startHookBackend(
    HOOK_SECRET,
    () => answer({ allow: false, status: 451, reason: "banned\nuntil friday" }),
  );
  await using ts = await startServer({
    HOOK_CONNECT_URL: `${backend.url}/connect`,
    WEBHOOK_SECRET: HOOK_SECRET,
  });
  const t = await token("mallory");
  const res = await rawHandshake(ts.port, `/ws?token=${t}`);
  assert.equal(res.status, 451);
  assert.equal(res.body.trim(), "banned until friday", "the reason, on one line");
  assert.equal(ts.server.stats().connections, 0);
  assert.equal(ts.audit.of("connect").length, 0, "no session was made");
  const [call] = backend.callsTo("/connect");
  assert.ok(call, "the backend was asked");
  assert.ok(call.signed, "the request is signed with WEBHOOK_SECRET");
  assert.equal(call.json.userId, "mallory");
  assert.equal((call.json.claims as Record<string, unknown>).sub, "mallory");
  assert.equal(call.json.ip, "127.0.0.1");
  // The token is nowhere: not in the URL, the headers or the body.
  assert.ok(!call.url.includes(t) && !call.body.includes(t));
  for (const [, value] of call.headers) assert.ok(!value.includes(t));
  // A refusal without a status is 403.
  backend.handle(() => answer({ allow: false }));
  assert.equal((await rawHandshake(ts.port, `/ws?token=${t}`)).status, 403);
});

Deno.test("connect hook: a grant adds rooms and presence info; the request names the welcome id", async () => {
  await using backend = startHookBackend(
    HOOK_SECRET,
    () => answer({ allow: true, rooms: ["vip:*"], info: { tier: "gold" } }),
  );
  await using ts = await startServer({
    HOOK_CONNECT_URL: `${backend.url}/connect`,
    WEBHOOK_SECRET: HOOK_SECRET,
    PRESENCE: "1",
  });
  const t = await token("alice", { rooms: ["lobby"] });
  const { client, welcome } = await connect(`${ts.wsUrl}?token=${t}`);
  try {
    assert.equal(backend.callsTo("/connect")[0]?.json.connectionId, welcome.connectionId);
    const vip = await client.request({ type: "join", room: "vip:1", id: "v" });
    assert.equal(vip.type, "joined", "the hook's grant");
    const state = await client.nextOf("presence_state");
    assert.deepEqual(
      (state.members as { userId: string; info?: unknown }[]).map((m) => m.info),
      [{ tier: "gold" }],
      "the hook's info is the presence info",
    );
    assert.equal((await client.request({ type: "join", room: "lobby", id: "l" })).type, "joined");
    // A refresh keeps what the hook granted: the room is not taken away.
    const fresh = await token("alice", { rooms: ["lobby"] });
    assert.equal(
      (await client.request({ type: "refresh", token: fresh, id: "r" })).type,
      "refreshed",
    );
    const ack = await client.request({ type: "message", room: "vip:1", payload: 1, id: "m" });
    assert.equal(ack.type, "ack", "still a member with publish access after the refresh");
    assert.equal(backend.callsTo("/connect").length, 1, "a refresh does not ask again");
    const other = await client.request({ type: "join", room: "staff", id: "s" });
    assert.equal(other.type, "error");
    assert.equal(other.code, "forbidden");
  } finally {
    await client.close();
  }
});

Deno.test("connect hook: failure refuses with 503 at once after the timeout; HOOK_CONNECT_FAIL=open lets tokens in", async () => {
  await using backend = startHookBackend(HOOK_SECRET, async () => {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return answer({ allow: true });
  });
  await using ts = await startServer({
    HOOK_CONNECT_URL: `${backend.url}/connect`,
    WEBHOOK_SECRET: HOOK_SECRET,
    HOOK_TIMEOUT_MS: "200",
  });
  const t = await token("bob");
  const started = performance.now();
  const res = await rawHandshake(ts.port, `/ws?token=${t}`);
  const took = performance.now() - started;
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("retry-after"), "1");
  assert.ok(took < 1000, `cut off near the timeout, took ${took.toFixed(0)} ms`);
  assert.equal(ts.audit.of("hook_failed")[0]?.failure, "timeout");

  await using open = await startServer({
    HOOK_CONNECT_URL: `${backend.url}/connect`,
    WEBHOOK_SECRET: HOOK_SECRET,
    HOOK_TIMEOUT_MS: "200",
    HOOK_CONNECT_FAIL: "open",
  });
  const { client } = await connect(`${open.wsUrl}?token=${t}`);
  await client.close();
  // Let the slow answers finish before the backend shuts down.
  await new Promise((resolve) => setTimeout(resolve, 1500));
});

Deno.test("connect hook: an answer that breaks the schema is refused, not trusted", async () => {
  await using backend = startHookBackend(
    HOOK_SECRET,
    // `status` outside 400–499 and rooms that are not a list: the whole answer is a failure.
    () => answer({ allow: true, rooms: "*" }),
  );
  await using ts = await startServer({
    HOOK_CONNECT_URL: `${backend.url}/connect`,
    WEBHOOK_SECRET: HOOK_SECRET,
  });
  const t = await token("eve", { rooms: [] });
  assert.equal((await rawHandshake(ts.port, `/ws?token=${t}`)).status, 503);
  assert.equal(ts.audit.of("hook_failed")[0]?.failure, "bad_shape");
  backend.handle(() => answer({ allow: false, status: 302 }));
  assert.equal((await rawHandshake(ts.port, `/ws?token=${t}`)).status, 503);
  const metrics = await (await fetch(`${ts.httpUrl}/metrics`)).text();
  assert.match(metrics, /realtime_hook_calls_total\{hook="connect",result="bad_shape"\} 2/);
  assert.match(metrics, /realtime_hook_seconds_count\{hook="connect"\} 2/);
});

Deno.test("hook config: a hook URL needs WEBHOOK_SECRET; bad values are one line each", () => {
  assert.throws(
    () => loadConfig({ JWT_SECRET: "x".repeat(32), HOOK_JOIN_URL: "http://127.0.0.1:1/join" }),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.message ===
        "WEBHOOK_SECRET: is required when HOOK_JOIN_URL is set (every hook request is signed with it)",
  );
  assert.throws(
    () =>
      loadConfig({
        JWT_SECRET: "x".repeat(32),
        HOOK_CONNECT_URL: "ftp://example.com",
        HOOK_CONNECT_FAIL: "maybe",
        HOOK_TIMEOUT_MS: "soon",
        HOOK_CONCURRENCY: "0",
      }),
    (err: unknown) =>
      err instanceof ConfigError &&
      ["HOOK_CONNECT_URL", "HOOK_CONNECT_FAIL", "HOOK_TIMEOUT_MS", "HOOK_CONCURRENCY"].every((v) =>
        err.issues.some((i) => i.variable === v)
      ) && err.message.split("\n").length === err.issues.length,
  );
  const config = loadConfig({ JWT_SECRET: "x".repeat(32) });
  assert.deepEqual(
    { ...config.hooks, urls: undefined },
    {
      urls: undefined,
      connectFail: "closed",
      secret: undefined,
      timeoutMs: 1000,
      concurrency: 256,
      breakerFailures: 5,
      breakerCooldownMs: 5000,
    },
  );
});

Deno.test("hooks: the token never reaches the backend, in any hook", async () => {
  await using backend = startHookBackend(HOOK_SECRET, (call) =>
    answer(
      call.path === "/rpc"
        ? { payload: "pong" }
        : call.path === "/connect"
        ? { allow: true }
        : { allow: true, cacheSec: 0 },
    ));
  await using policy = await writePolicy([{ room: "chat:*", hook: true }]);
  await using ts = await startServer({
    ROOM_POLICY: policy.path,
    WEBHOOK_SECRET: HOOK_SECRET,
    HOOK_CONNECT_URL: `${backend.url}/connect`,
    HOOK_JOIN_URL: `${backend.url}/join`,
    HOOK_PUBLISH_URL: `${backend.url}/publish`,
    HOOK_RPC_URL: `${backend.url}/rpc`,
  });
  const first = await token("alice", { rooms: [] });
  const second = await token("alice", { rooms: [], ttlSec: 7200 });
  const { client } = await connect(`${ts.wsUrl}?token=${first}`);
  try {
    assert.equal((await client.request({ type: "join", room: "chat:1", id: "j" })).type, "joined");
    assert.equal(
      (await client.request({ type: "message", room: "chat:1", payload: "hi", id: "m" })).type,
      "ack",
    );
    assert.equal(
      (await client.request({ type: "refresh", token: second, id: "r" })).type,
      "refreshed",
    );
    assert.equal(
      (await client.request({ type: "rpc", method: "x", payload: 1, id: "c" })).type,
      "rpc_result",
    );
  } finally {
    await client.close();
  }
  assert.deepEqual(backend.calls.map((c) => c.path), ["/connect", "/join", "/publish", "/rpc"]);
  for (const call of backend.calls) {
    for (const t of [first, second]) {
      const body = call.path === "/publish"
        ? call.body.replace(JSON.stringify(first), "")
        : call.body;
      assert.ok(!call.url.includes(t) && !body.includes(t), `${call.path} carries no token`);
      for (const [, value] of call.headers) assert.ok(!value.includes(t));
    }
    assert.ok(call.signed);
  }
});
