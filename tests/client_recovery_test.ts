/**
 * The browser client's recovery in history rooms, against the real server,
 * with the network cut under it by a proxy rather than sockets closed politely.
 */
import assert from "node:assert/strict";
import { connect } from "../packages/client/src/client.ts";
import type { RejoinInfo, RoomMessage } from "../packages/client/src/client.ts";
import { eventually, startServer, token } from "./_helpers.ts";
import { CuttableProxy } from "./_proxy.ts";

const FAST = {
  reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
  pingIntervalMs: 200,
  pongTimeoutMs: 300,
};

Deno.test("client: a cut connection rejoins with since and gets exactly what it missed", async () => {
  const ts = await startServer({ HISTORY_SIZE: "100" });
  const proxy = new CuttableProxy(ts.port);
  const rt = connect(proxy.wsUrl, { token: () => token("alice"), ...FAST });
  try {
    const got: RoomMessage[] = [];
    const rejoins: RejoinInfo[] = [];
    rt.on("rejoin", (_room, info) => rejoins.push(info));
    await rt.join("chat", (_p, m) => got.push(m));
    await ts.server.publish("chat", "first");
    await eventually(() => got.length === 1, 3000, "the first message");
    assert.deepEqual(rt.position("chat"), { offset: 1, epoch: got[0]!.epoch });

    proxy.blackhole("both");
    // Published while the client cannot hear; it notices only by its pong timeout.
    for (let i = 0; i < 10; i++) await ts.server.publish("chat", i);
    await eventually(() => rt.state === "reconnecting", 3000, "the dead link noticed");
    proxy.cut();
    proxy.heal();
    await eventually(() => rejoins.length === 1 && rt.state === "open", 5000, "the rejoin");
    assert.deepEqual(rejoins[0], { recovered: true, missed: 10 });
    await eventually(() => got.length === 11, 3000, "the replay");
    assert.deepEqual(got.map((m) => m.offset), Array.from({ length: 11 }, (_, i) => i + 1));
    assert.deepEqual(got.slice(1).map((m) => m.payload), [...Array(10).keys()]);
    await ts.server.publish("chat", "live");
    await eventually(() => got.length === 12, 3000, "live after the replay");
    assert.equal(got.at(-1)?.offset, 12);
  } finally {
    await rt.close();
    await proxy.close();
    await ts.close();
  }
});

Deno.test("client: a publish whose ack was lost is resent with its id and delivered once", async () => {
  const ts = await startServer({ HISTORY_SIZE: "100" });
  const proxy = new CuttableProxy(ts.port);
  const rt = connect(proxy.wsUrl, { token: () => token("alice"), ...FAST });
  const bob = connect(ts.wsUrl, { token: () => token("bob") });
  try {
    const seen: unknown[] = [];
    await rt.join("chat", () => {});
    await bob.join("chat", (payload) => seen.push(payload));
    // The server hears the publish, but its ack never comes back.
    proxy.blackhole("to_client");
    const published = rt.publish("chat", "exactly once");
    await eventually(() => seen.length === 1, 3000, "bob hears it");
    await eventually(() => rt.state === "reconnecting", 3000, "the dead link noticed");
    proxy.cut();
    proxy.heal();
    await published; // acked after the rejoin, by the resend
    await ts.server.publish("chat", "after");
    await eventually(() => seen.length === 2, 3000, "the next message");
    assert.deepEqual(seen, ["exactly once", "after"]);
  } finally {
    await rt.close();
    await bob.close();
    await proxy.close();
    await ts.close();
  }
});

Deno.test("client: recover false, and rooms without history, rejoin with recovered false", async () => {
  const dir = await Deno.makeTempDir();
  const policy = `${dir}/policy.json`;
  await Deno.writeTextFile(
    policy,
    JSON.stringify({ rooms: [{ room: "kept", history: { size: 10, ttlSec: 60 } }] }),
  );
  const ts = await startServer({ ROOM_POLICY: policy });
  const proxy = new CuttableProxy(ts.port);
  const rt = connect(proxy.wsUrl, { token: () => token("alice"), ...FAST });
  try {
    const got: unknown[] = [];
    const rejoins: Record<string, RejoinInfo> = {};
    rt.on("rejoin", (room, info) => rejoins[room] = info);
    await rt.join("kept", (p) => got.push(p), { recover: false });
    await rt.join("plain", () => {});
    await ts.server.publish("kept", "seen");
    await eventually(() => got.length === 1, 3000, "the first message");
    proxy.blackhole("both");
    await ts.server.publish("kept", "missed");
    await eventually(() => rt.state === "reconnecting", 3000, "the dead link noticed");
    proxy.cut();
    proxy.heal();
    await eventually(() => Object.keys(rejoins).length === 2, 5000, "both rejoins");
    assert.deepEqual(rejoins, {
      kept: { recovered: false, missed: 0 },
      plain: { recovered: false, missed: 0 },
    });
    assert.equal(rt.position("kept")?.offset, 2, "the position moved to the stream's head");
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(got, ["seen"], "nothing replayed");
  } finally {
    await rt.close();
    await proxy.close();
    await ts.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("client: history() pages backwards; a URL list moves to the next server", async () => {
  const a = await startServer({ HISTORY_SIZE: "100" });
  const b = await startServer({ HISTORY_SIZE: "100" });
  const rt = connect([a.wsUrl, b.wsUrl], { token: () => token("alice"), ...FAST });
  try {
    for (let i = 1; i <= 25; i++) await a.server.publish("log", i);
    await rt.join("log", () => {});
    const newest = await rt.history<number>("log", { limit: 10 });
    assert.deepEqual(newest.messages.map((m) => m.payload), [
      16,
      17,
      18,
      19,
      20,
      21,
      22,
      23,
      24,
      25,
    ]);
    assert.equal(newest.more, true);
    const older = await rt.history<number>("log", {
      limit: 100,
      before: newest.messages[0]!.offset,
    });
    assert.equal(older.messages.length, 15);
    assert.equal(older.more, false);
    const firstInstance = rt.instanceId;
    await a.close();
    await eventually(() => rt.state === "open" && rt.instanceId !== firstInstance, 5000, "moved");
    assert.equal(rt.instanceId, b.server.instanceId);
    await assert.rejects(rt.history("not a room name"), TypeError);
  } finally {
    await rt.close();
    await a.close();
    await b.close();
  }
});
