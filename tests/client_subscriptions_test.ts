/**
 * Several subscriptions to one room on one client (two components showing
 * the same room): each handler receives, none replaces another, and the
 * client leaves the room only with its last subscription. Against the real
 * server.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../packages/client/src/client.ts";
import { eventually, sleep, startServer, token } from "./_helpers.ts";

Deno.test("subscriptions: a second handler on a room does not replace the first", async () => {
  await using ts = await startServer();
  const rt = connect(ts.wsUrl, { token: await token("alice") });
  try {
    const first: unknown[] = [];
    const second: unknown[] = [];
    const a = await rt.join("chat:1", (payload) => first.push(payload));
    const b = await rt.join("chat:1", (payload) => second.push(payload));
    assert.deepEqual(rt.rooms, ["chat:1"]);
    await rt.publish("chat:1", 1);
    await eventually(() => first.length === 1 && second.length === 1, 3000, "both handlers");

    await a.unsubscribe();
    assert.equal(a.active, false);
    assert.equal(b.active, true);
    await rt.publish("chat:1", 2);
    await eventually(() => second.length === 2, 3000, "the remaining handler");
    assert.deepEqual(first, [1], "an unsubscribed handler receives nothing more");
    assert.equal(ts.server.stats().rooms, 1, "still in the room while a subscription remains");

    await b.unsubscribe();
    await b.unsubscribe(); // twice is harmless
    assert.deepEqual(rt.rooms, []);
    await eventually(() => ts.server.stats().rooms === 0, 3000, "left with the last one");
  } finally {
    await rt.close();
  }
});

Deno.test("subscriptions: concurrent joins of one room both attach; the same function may subscribe twice", async () => {
  await using ts = await startServer();
  const rt = connect(ts.wsUrl, { token: await token("alice") });
  try {
    const got: unknown[] = [];
    const handler = (payload: unknown) => got.push(payload);
    const [a, b] = await Promise.all([rt.join("r", handler), rt.join("r", handler)]);
    await rt.publish("r", "x");
    await eventually(() => got.length === 2, 3000, "delivered once per subscription");
    await a.unsubscribe();
    await rt.publish("r", "y");
    await eventually(() => got.length === 3, 3000, "the other subscription");
    await sleep(50);
    assert.deepEqual(got, ["x", "x", "y"]);
    assert.equal(b.active, true);
  } finally {
    await rt.close();
  }
});

Deno.test("subscriptions: unsubscribe then join again at once (StrictMode's remount) ends joined", async () => {
  await using ts = await startServer();
  const rt = connect(ts.wsUrl, { token: await token("alice") });
  try {
    const got: unknown[] = [];
    const first = await rt.join("r", () => {});
    const leaving = first.unsubscribe();
    const again = rt.join("r", (payload) => got.push(payload));
    await leaving;
    const sub = await again;
    assert.equal(sub.active, true);
    await rt.publish("r", "after remount");
    await eventually(() => got.length === 1, 3000, "the new subscription receives");
    assert.equal(ts.server.stats().rooms, 1);
  } finally {
    await rt.close();
  }
});

Deno.test("subscriptions: leave(room) and close() end every subscription", async () => {
  await using ts = await startServer();
  const rt = connect(ts.wsUrl, { token: await token("alice") });
  const a = await rt.join("r", () => {});
  const b = await rt.join("r", () => {});
  await rt.leave("r");
  assert.equal(a.active, false);
  assert.equal(b.active, false);
  const c = await rt.join("s", () => {});
  await rt.close();
  assert.equal(c.active, false);
  await eventually(() => ts.server.stats().rooms === 0, 3000, "the server saw the close");
});
