/**
 * The browser client against the real server (not the protocol fake of
 * client_test.ts): what users' code will actually do.
 */
import assert from "node:assert/strict";
import { connect, RealtimeError } from "../packages/client/src/client.ts";
import type { RoomMessage } from "../packages/client/src/client.ts";
import { eventually, startServer, token } from "./_helpers.ts";

Deno.test("client ↔ server: join, publish with ack, receive, leave", async () => {
  const ts = await startServer();
  const alice = connect(ts.wsUrl, { token: await token("alice", { rooms: ["chat:*"] }) });
  const bob = connect(ts.wsUrl, { token: () => token("bob", { rooms: ["chat:*"] }) });
  try {
    const got: RoomMessage[] = [];
    await alice.join("chat:1", () => {});
    await bob.join("chat:1", (_payload, message) => got.push(message));
    await alice.publish("chat:1", { text: "hi" });
    await eventually(() => got.length === 1, 3000, "bob's message");
    assert.deepEqual(got[0]!.payload, { text: "hi" });
    assert.equal(got[0]!.from, "alice");
    assert.equal(alice.state, "open");
    await bob.leave("chat:1");
    assert.equal(ts.server.stats().rooms, 1);
  } finally {
    await alice.close();
    await bob.close();
    await ts.close();
  }
});

Deno.test("client ↔ server: forbidden and rate_limited reject with the server's code", async () => {
  const ts = await startServer({ RATE_LIMIT_CAPACITY: "3", RATE_LIMIT_REFILL_PER_SEC: "1" });
  const rt = connect(ts.wsUrl, { token: await token("alice", { rooms: ["open"] }) });
  try {
    await assert.rejects(
      rt.join("closed", () => {}),
      (e: unknown) => e instanceof RealtimeError && e.code === "forbidden" && e.room === "closed",
    );
    await rt.join("open", () => {});
    await assert.rejects(
      Promise.all([rt.publish("open", 1), rt.publish("open", 2)]),
      (e: unknown) =>
        e instanceof RealtimeError && e.code === "rate_limited" && (e.retryAfterMs ?? 0) > 0,
    );
  } finally {
    await rt.close();
    await ts.close();
  }
});

Deno.test("client ↔ server: shutdown (1001) and a new server on the same port: reconnect and rejoin", async () => {
  const first = await startServer();
  const port = first.port;
  const rt = connect(first.wsUrl, {
    token: () => token("alice"),
    reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
  });
  let second: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    const got: unknown[] = [];
    await rt.join("room", (payload) => got.push(payload));
    const reconnecting = new Promise((r) => rt.on("reconnecting", r));
    await first.close();
    await reconnecting;
    second = await startServer({ PORT: String(port) });
    await eventually(
      () => rt.state === "open" && second!.server.stats().rooms === 1,
      5000,
      "rejoin",
    );
    assert.equal((await second.server.publish("room", "after restart")).recipients, 1);
    await eventually(() => got.includes("after restart"), 3000, "delivery after rejoin");
  } finally {
    await rt.close();
    await second?.close();
  }
});

Deno.test("client ↔ server: expiring → token function → refresh keeps the connection", async () => {
  const ts = await startServer({ EXPIRY_WARNING_MS: "1500", JWT_CLOCK_TOLERANCE_SEC: "0" });
  let minted = 0;
  const rt = connect(ts.wsUrl, {
    token: () => token("alice", { ttlSec: minted++ === 0 ? 2 : 600 }),
  });
  try {
    const refreshed = new Promise<number | null>((r) => rt.on("refreshed", r));
    await rt.join("r", () => {});
    const expiresAt = await refreshed;
    assert.ok(expiresAt !== null && expiresAt > Date.now() / 1000 + 60);
    await new Promise((r) => setTimeout(r, 1500)); // past the first token's exp
    assert.equal(rt.state, "open");
    assert.equal(ts.audit.of("disconnect").length, 0);
  } finally {
    await rt.close();
    await ts.close();
  }
});

Deno.test("client ↔ server: one-time tickets, a new one per attempt", async () => {
  const ts = await startServer();
  const jwt = await token("alice");
  let issued = 0;
  const rt = connect(ts.wsUrl, {
    ticket: async () => {
      issued++;
      const res = await fetch(`${ts.httpUrl}/ticket`, {
        method: "POST",
        headers: { authorization: `Bearer ${jwt}` },
      });
      return (await res.json()).ticket;
    },
  });
  try {
    await rt.join("r", () => {});
    assert.equal(rt.userId, "alice");
    assert.equal(issued, 1);
    assert.equal(ts.audit.of("connect")[0]!.source, "ticket");
  } finally {
    await rt.close();
    await ts.close();
  }
});
