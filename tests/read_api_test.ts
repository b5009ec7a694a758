/**
 * `GET /api/history` and `GET /api/presence`, what backends read without a
 * socket: the same pages members get, presence from the store, and the
 * publish API's authorization and errors.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../packages/client/src/client.ts";
import { eventually, startServer, token } from "./_helpers.ts";

const API_KEY = "read-api-key-that-is-long-enough-000000";
const auth = { authorization: `Bearer ${API_KEY}` };

async function getJson(url: string, headers: HeadersInit = auth) {
  const res = await fetch(url, { headers });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

Deno.test("read API: history pages as members see them, newest last", async () => {
  await using ts = await startServer({ API_KEY, HISTORY_SIZE: "10" });
  for (const n of [1, 2, 3]) await ts.server.publish("chat:1", { n });
  const all = await getJson(`${ts.httpUrl}/api/history?room=chat:1`);
  assert.equal(all.status, 200);
  const messages = all.body.messages as { payload: unknown; offset: number; type: string }[];
  assert.deepEqual(messages.map((m) => m.payload), [{ n: 1 }, { n: 2 }, { n: 3 }]);
  assert.equal(messages[0]!.type, "message");
  assert.equal(all.body.offset, 3);
  assert.equal(typeof all.body.epoch, "string");
  assert.equal(all.body.more, false);
  const page = await getJson(`${ts.httpUrl}/api/history?room=chat:1&limit=1&before=3`);
  assert.deepEqual((page.body.messages as { offset: number }[]).map((m) => m.offset), [2]);
  assert.equal(page.body.more, true);
});

Deno.test("read API: presence counts each user once, with connections and info", async () => {
  await using ts = await startServer({ API_KEY, PRESENCE: "true" });
  const a1 = connect(ts.wsUrl, { token: await token("alice", { info: { name: "Alice" } }) });
  const a2 = connect(ts.wsUrl, { token: await token("alice", { info: { name: "Alice" } }) });
  const b = connect(ts.wsUrl, { token: await token("bob") });
  try {
    await Promise.all([
      a1.join("lobby", () => {}),
      a2.join("lobby", () => {}),
      b.join("lobby", () => {}),
    ]);
    await eventually(
      async () => (await getJson(`${ts.httpUrl}/api/presence?room=lobby`)).body.count === 2,
      3000,
      "two users",
    );
    const { status, body } = await getJson(`${ts.httpUrl}/api/presence?room=lobby`);
    assert.equal(status, 200);
    const members = (body.members as { userId: string; connections: number; info?: unknown }[])
      .sort((x, y) => x.userId.localeCompare(y.userId));
    assert.deepEqual(members, [
      { userId: "alice", connections: 2, info: { name: "Alice" } },
      { userId: "bob", connections: 1 },
    ]);
  } finally {
    await Promise.all([a1.close(), a2.close(), b.close()]);
  }
});

Deno.test("read API: bad input, rooms without history or presence, no key, disabled", async () => {
  await using ts = await startServer({ API_KEY });
  const url = ts.httpUrl;
  assert.equal((await getJson(`${url}/api/history?room=bad room`)).status, 400);
  assert.equal((await getJson(`${url}/api/history`)).status, 400);
  assert.equal((await getJson(`${url}/api/history?room=r&limit=0`)).status, 400);
  assert.equal((await getJson(`${url}/api/history?room=r&limit=x`)).status, 400);
  const noHistory = await getJson(`${url}/api/history?room=r`);
  assert.equal(noHistory.status, 400);
  assert.match((noHistory.body.error as { message: string }).message, /keeps no history/);
  assert.equal((await getJson(`${url}/api/presence?room=r`)).status, 400);
  const anonymous = await fetch(`${url}/api/history?room=r`);
  await anonymous.body?.cancel();
  assert.equal(anonymous.status, 401);
  assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Bearer/);
  await using bare = await startServer();
  assert.equal((await getJson(`${bare.httpUrl}/api/presence?room=r`)).status, 404);
});
