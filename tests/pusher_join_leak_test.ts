/**
 * A Pusher presence subscription that ends while its core join is still in
 * flight (unsubscribed at once, or its socket closed at once) leaves nothing
 * behind: no presence member on this node, and every `member_added` its
 * webhook got is matched by a `member_removed` for the same `channel_data`
 * user (never the connection's anonymous `~` id).
 *
 * The window is widened by a bus whose room subscriptions take 100 ms (a
 * Redis round trip, slowed), so that the client's next frame lands inside it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MemoryBus } from "../lib/bus/memory.ts";
import { eventually, sleep } from "./_helpers.ts";
import { APP, rawPusher, rawSocketId, serverSdk, startPusherServer } from "./_pusher.ts";
import { startReceiver } from "./_webhook_receiver.ts";

/** A memory bus whose room subscriptions take 100 ms: joins stay in flight that long. */
class SlowBus extends MemoryBus {
  override async subscribe(room: string): Promise<void> {
    await sleep(100);
    return await super.subscribe(room);
  }
}

const CHANNEL = "presence-flight";
const ROOM = `~${APP.id}~${CHANNEL}`;

Deno.test("pusher presence: unsubscribing while the join is in flight leaves no member behind", async () => {
  await using ts = await startPusherServer({}, undefined, { bus: new SlowBus() });
  const sdk = serverSdk(ts.port);
  for (let i = 0; i < 3; i++) {
    await using raw = rawPusher(ts);
    const auth = sdk.authorizeChannel(await rawSocketId(raw), CHANNEL, { user_id: `u${i}` });
    raw.send({ event: "pusher:subscribe", data: { channel: CHANNEL, ...auth } });
    raw.send({ event: "pusher:unsubscribe", data: { channel: CHANNEL } });
    await sleep(150);
    // Joined, then left at once: the session's own room list and presence agree.
    assert.equal(ts.server.presence?.count(ROOM) ?? 0, 0, `round ${i}: no member while open`);
  }
  await eventually(() => ts.server.stats().connections === 0, 3000, "every socket closed");
  assert.equal(ts.server.presence?.stats().rooms, 0, "no presence room left on this node");
});

Deno.test("pusher presence: a socket closed while its join is in flight leaves as the member it joined as", async () => {
  await using receiver = startReceiver({ secret: APP.secret, scheme: "pusher" });
  await using ts = await startPusherServer({}, {
    webhooks: [{ url: receiver.url, events: ["member_added", "member_removed"] }],
  }, { bus: new SlowBus() });
  const sdk = serverSdk(ts.port);
  for (let i = 0; i < 3; i++) {
    const raw = rawPusher(ts);
    const auth = sdk.authorizeChannel(await rawSocketId(raw), CHANNEL, { user_id: `u${i}` });
    raw.send({ event: "pusher:subscribe", data: { channel: CHANNEL, ...auth } });
    await sleep(30);
    raw.ws.close();
    await raw.closed;
  }
  await eventually(() => ts.server.stats().connections === 0, 3000, "every socket closed");
  await sleep(1500); // the webhook batch (≤ 1 s)
  assert.equal(ts.server.presence?.stats().rooms, 0, "no presence room left on this node");
  const events = receiver.accepted().map((e) => `${e.name} ${e.user_id}`);
  const added = events.filter((e) => e.startsWith("member_added")).map((e) => e.split(" ")[1]);
  const removed = events.filter((e) => e.startsWith("member_removed")).map((e) => e.split(" ")[1]);
  assert.deepEqual([...added].sort(), [...removed].sort(), `balanced: ${events.join(", ")}`);
  assert.ok(added.every((u) => /^u\d$/.test(u ?? "")), `channel_data users only: ${events}`);
});
