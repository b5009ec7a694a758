/**
 * Redis Sentinel with real processes on loopback: a primary, a replica and
 * three sentinels (quorum 2, `down-after-milliseconds` 1000), two server
 * nodes (main.ts) on the bus and the stores through `REDIS_SENTINELS`. The
 * primary is killed (SIGKILL) in the middle of a history room's traffic:
 * both nodes follow the new primary by themselves, every acknowledged
 * message is in the history once, and a publish answered `unavailable` (or
 * not answered) lands once when retried with the same id.
 */
import assert from "node:assert/strict";
import {
  type Client,
  connect,
  eventually,
  joinRoom,
  type Msg,
  SECRET,
  sleep,
  token,
} from "./_helpers.ts";
import { SentinelSet, skipRedis, startSentinelNode } from "./_redis.ts";
import { startAll } from "./_process.ts";
import type { ServerProcess } from "./_process.ts";
import { loadConfig } from "../lib/config.ts";

async function client(node: ServerProcess, sub: string): Promise<Client> {
  return (await connect(`${node.wsUrl}?token=${await token(sub, { rooms: ["*"] })}`)).client;
}

/** Sends `payload` with `id` until it is acknowledged, resending the same id after `unavailable` or silence. */
async function publishUntilAcked(
  c: Client,
  payload: unknown,
  id: string,
  deadline: number,
): Promise<{ offset: number; attempts: number }> {
  for (let attempts = 1; Date.now() < deadline; attempts++) {
    let reply: Msg;
    try {
      reply = await c.request({ type: "message", room: "chat", payload, id }, 3000);
    } catch {
      continue; // No answer in time: resend the same id.
    }
    if (reply.type === "ack") return { offset: Number(reply.offset), attempts };
    assert.equal(reply.code, "unavailable", JSON.stringify(reply));
    await sleep(Math.min(Number(reply.retryAfterMs) || 100, 500));
  }
  throw new Error(`message ${id} not acknowledged in time`);
}

Deno.test("sentinel config: REDIS_SENTINELS and REDIS_SENTINEL_NAME instead of REDIS_URL; mistakes named", () => {
  const base = { JWT_SECRET: SECRET, BUS: "redis" };
  const config = loadConfig({
    ...base,
    REDIS_SENTINELS: "10.0.0.1:26379, sentinel-b:26380",
    REDIS_SENTINEL_NAME: "mymaster",
    REDIS_PASSWORD: "data-secret",
  });
  assert.deepEqual(config.store.redis?.url, {
    sentinels: [{ host: "10.0.0.1", port: 26379 }, { host: "sentinel-b", port: 26380 }],
    name: "mymaster",
    sentinelPassword: undefined,
    password: "data-secret",
  });
  assert.equal(config.store.kind, "redis");
  const issues = (env: Record<string, string>) => {
    try {
      loadConfig({ ...base, ...env });
      return [];
    } catch (err) {
      return (err as Error).message.split("\n");
    }
  };
  assert.deepEqual(issues({ REDIS_SENTINELS: "h:1" }), [
    "REDIS_SENTINEL_NAME: is required with REDIS_SENTINELS (the primary's name in `sentinel monitor`)",
  ]);
  assert.deepEqual(
    issues({ REDIS_SENTINELS: "h:1", REDIS_SENTINEL_NAME: "m", REDIS_URL: "redis://h" }),
    [
      "REDIS_SENTINELS: set either REDIS_URL or REDIS_SENTINELS",
    ],
  );
  assert.deepEqual(issues({ REDIS_URL: "redis://h", REDIS_PASSWORD: "p" }), [
    "REDIS_PASSWORD: applies only with REDIS_SENTINELS or REDIS_CLUSTER_NODES (REDIS_URL carries its own credentials)",
  ]);
  // A bad list counts as unset for the other rules, which say so too.
  assert.ok(
    issues({ REDIS_SENTINELS: "no-port", REDIS_SENTINEL_NAME: "m" })
      .includes("REDIS_SENTINELS: each entry must be host:port"),
  );
  assert.deepEqual(issues({}), ["REDIS_URL: is required when BUS=redis"]);
});

Deno.test({
  name:
    "sentinel: the primary killed mid-traffic; both nodes follow the new one, history loses and repeats nothing acknowledged, presence heals",
  ignore: skipRedis,
  async fn() {
    await using set = await SentinelSet.start({ downAfterMs: 1000, failoverTimeoutMs: 3000 });
    const [oldPrimary, replica] = set.dataPorts as [number, number];
    assert.equal(await set.primaryPort(), oldPrimary);
    const channel = `sentinel-${crypto.randomUUID()}`;
    const env = {
      JWT_SECRET: SECRET,
      HISTORY_SIZE: "1000",
      PRESENCE: "1",
      PRESENCE_TTL_MS: "3000",
    };
    await using nodes = await startAll([
      startSentinelNode(set, channel, { env }),
      startSentinelNode(set, channel, { env }),
    ]);
    const [a, b] = nodes;
    const alice = await client(a, "alice");
    const bob = await client(b, "bob");
    try {
      await joinRoom(alice, "chat");
      await joinRoom(bob, "chat");
      const bobGot: Msg[] = [];
      bob.ws.addEventListener("message", (e) => {
        for (const line of String(e.data).split("\n")) {
          const m = JSON.parse(line) as Msg;
          if (m.type === "message" && m.room === "chat" && m.from === "alice") bobGot.push(m);
        }
      });

      const total = 40;
      const deadline = Date.now() + 45_000;
      const acked: number[] = [];
      let killedAt = 0;
      let firstAckAfterKill = 0;
      let retried = 0;
      for (let i = 0; i < total; i++) {
        if (i === 15) {
          await set.kill(oldPrimary);
          killedAt = performance.now();
        }
        const { offset, attempts } = await publishUntilAcked(alice, i, `m${i}`, deadline);
        if (killedAt > 0 && firstAckAfterKill === 0) firstAckAfterKill = performance.now();
        retried += attempts - 1;
        acked.push(offset);
      }
      const pauseMs = Math.round(firstAckAfterKill - killedAt);
      assert.equal(await set.primaryPort(), replica, "the sentinels promoted the replica");
      assert.ok(pauseMs < 15_000, `publishes resumed ${pauseMs} ms after the kill`);
      // Every message acknowledged once, at consecutive offsets.
      assert.deepEqual(
        acked,
        Array.from({ length: total }, (_, i) => i + 1),
        JSON.stringify(acked),
      );

      // Node B followed too: bob gets every message once, in order (gaps filled from the store)...
      const until = Date.now() + 15_000;
      while (bobGot.length < total && Date.now() < until) await sleep(50);
      assert.deepEqual(
        bobGot.map((m) => [m.payload, m.offset]),
        Array.from({ length: total }, (_, i) => [i, i + 1]),
      );
      // ...and publishes through the new primary, heard on node A.
      // (B's own links may still be reconnecting: `unavailable` is resent, as clients do.)
      const fromB = await publishUntilAcked(bob, "b", "b1", Date.now() + 15_000);
      assert.equal(fromB.offset, total + 1);
      const heard = await alice.next((m) => m.type === "message" && m.payload === "b", 5000);
      assert.equal(heard.offset, total + 1);

      // The history, read on B from the new primary: each message once, nothing lost.
      const carol = await client(b, "carol");
      const page = await carol.request({ type: "history", room: "chat", limit: 100, id: "h" });
      assert.deepEqual(
        (page.messages as Msg[]).map((m) => m.payload),
        [...Array.from({ length: total }, (_, i) => i), "b"],
      );
      await carol.close();
      // Every other Redis link of both nodes (tickets, revocations, …) is back too.
      for (const node of [a, b]) {
        let health: { status?: string } = {};
        for (const end = Date.now() + 10_000; health.status !== "ok" && Date.now() < end;) {
          health = await (await fetch(`${node.httpUrl}/healthz`)).json();
          if (health.status !== "ok") await sleep(100);
        }
        assert.equal(health.status, "ok", JSON.stringify(health));
      }
      // Presence heals on the new primary (whatever the old one had not replicated): both
      // nodes see both users, and a leave on one node reaches the other.
      const members = async (c: Client) => {
        const state = await c.request({ type: "presence", room: "chat", id: crypto.randomUUID() });
        return ((state.members ?? []) as { userId: string }[]).map((m) => m.userId).sort();
      };
      await eventually(
        async () =>
          JSON.stringify([await members(alice), await members(bob)]) ===
            JSON.stringify([["alice", "bob"], ["alice", "bob"]]),
        10_000,
        "both nodes list alice and bob after the failover",
      );
      const left = bob.next(
        (m) =>
          m.type === "presence_diff" &&
          ((m.leaves ?? []) as { userId: string }[]).some((u) => u.userId === "alice"),
        10_000,
      );
      await alice.close();
      await left;
      assert.deepEqual(await members(bob), ["bob"]);
      console.log(
        `failover: publishes paused ${pauseMs} ms after SIGKILL of the primary; ${retried} resends`,
      );
    } finally {
      await alice.close();
      await bob.close();
    }
  },
});
