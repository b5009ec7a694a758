/**
 * The `__proto__` and `MAX_PAYLOAD_DEPTH` protections of client frames hold
 * for every other JSON the server relays: the publish API's payload (400) and
 * the token's `info` claim, which presence shows to every member (the token
 * is refused, 401 with audit reason `bad_claims`).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Client,
  connectAs,
  join,
  type Msg,
  rawHandshake,
  startServer,
  type TestServer,
  token,
} from "./_helpers.ts";

const API_KEY = "k".repeat(40);
const PRESENCE = { PRESENCE: "1", PRESENCE_DIFF_MS: "50" };

async function publish(ts: TestServer, body: string): Promise<{ status: number; body: Msg }> {
  const res = await fetch(`${ts.httpUrl}/api/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body,
  });
  return { status: res.status, body: await res.json() };
}

/** Nothing but `expected` reached `client` (a ping round trip flushes what was sent before). */
async function onlyMessages(client: Client, expected: unknown[]): Promise<void> {
  await client.request({ type: "ping", id: `sync-${crypto.randomUUID()}` });
  const got = client.inbox.filter((m) => m.type === "message").map((m) => m.payload);
  assert.deepEqual(got, expected);
}

/** `{"a":[[…]]}`, `levels` arrays/objects deep. */
function nestedInfo(levels: number): string {
  return `{"a":${"[".repeat(levels - 1)}${"]".repeat(levels - 1)}}`;
}

Deno.test("publish API: a payload with a __proto__ key is 400 and reaches no one", async () => {
  await using ts = await startServer({ API_KEY });
  const bob = await connectAs(ts, "bob");
  await join(bob, "r");
  for (
    const body of [
      '{"room":"r","payload":{"__proto__":{"isAdmin":true}}}',
      '{"room":"r","payload":[1,{"x":{"__proto__":null}}]}',
      // The same key spelled with escapes.
      '{"room":"r","payload":{"\\u005f_proto__":{"isAdmin":true}}}',
    ]
  ) {
    const res = await publish(ts, body);
    assert.equal(res.status, 400, body);
    assert.deepEqual(res.body.error, {
      code: "bad_request",
      message: "payload: __proto__ keys are not allowed",
    });
  }
  // The word as a value, not a key, is an ordinary payload.
  const ok = await publish(ts, '{"room":"r","payload":{"text":"__proto__"}}');
  assert.equal(ok.status, 202);
  await bob.nextOf("message");
  await onlyMessages(bob, []);
  await bob.close();
});

Deno.test("token info: a __proto__ key or nesting past MAX_PAYLOAD_DEPTH refuses the token", async () => {
  await using ts = await startServer({ ...PRESENCE, MAX_PAYLOAD_DEPTH: "8" });
  const watcher = await connectAs(ts, "watcher");
  await join(watcher, "lobby");
  await watcher.nextOf("presence_state");
  const bad: [string, string][] = [
    ["__proto__", '{"name":"m","__proto__":{"isAdmin":true}}'],
    ["nested __proto__", '{"p":[{"__proto__":{}}]}'],
    // 500 levels fit in the 1 KiB the claim may take.
    ["500 deep", nestedInfo(500)],
    ["9 deep", nestedInfo(9)],
  ];
  for (const [label, info] of bad) {
    assert.ok(new TextEncoder().encode(info).length <= 1024, label);
    const t = await token("mallory", { info: JSON.parse(info) });
    const res = await rawHandshake(ts.port, `/ws?token=${t}`);
    assert.equal(res.status, 401, label);
    assert.equal(res.body.trim(), "invalid token");
    const ticket = await fetch(`${ts.httpUrl}/ticket`, {
      method: "POST",
      headers: { authorization: `Bearer ${t}` },
    });
    assert.equal(ticket.status, 401, label);
    await ticket.body?.cancel();
  }
  const reasons = ts.audit.of("auth_failure").map((f) => f.reason);
  assert.deepEqual(reasons, Array(bad.length * 2).fill("bad_claims"));

  // At the limit the info is shown as it is.
  const info = JSON.parse(nestedInfo(8));
  const alice = await connectAs(ts, "alice", { info });
  await join(alice, "lobby");
  const diff = await watcher.nextOf("presence_diff");
  assert.deepEqual(diff.joins, [{ userId: "alice", info }]);
  await alice.close();
  await watcher.close();
});
