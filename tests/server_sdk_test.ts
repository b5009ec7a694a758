/**
 * The backend SDK (`packages/server`) against the real server: publish with
 * and without `idempotencyKey`, revoke/unrevoke closing a real client,
 * history and presence, tokens minted with HS256, RS256 and ES256 accepted
 * by a server configured for them, webhook signatures interchangeable with
 * the server's own `lib/webhooks/signature.ts`, and 503 `Retry-After` retries
 * against a real HTTP server that answers 503 first.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as jose from "jose";
import { connect } from "../packages/client/src/client.ts";
import {
  mintToken,
  RealtimeApi,
  RealtimeApiError,
  signWebhook,
  verifyWebhook,
} from "../packages/server/src/mod.ts";
import { signBody, verifyBody } from "../lib/webhooks/signature.ts";
import { eventually, SECRET, startServer } from "./_helpers.ts";
import { loadConfig } from "../lib/config.ts";
import { createJwtVerifier } from "../lib/core/auth.ts";

const API_KEY = "server-sdk-api-key-long-enough-0000000000";

Deno.test("server SDK: publish reaches a client; idempotencyKey dedupes in a history room", async () => {
  await using ts = await startServer({ API_KEY, HISTORY_SIZE: "10" });
  const api = new RealtimeApi({ url: ts.httpUrl, apiKey: API_KEY });
  const rt = connect(ts.wsUrl, {
    token: await mintToken(SECRET, { sub: "alice", rooms: ["chat:*"] }),
  });
  try {
    const got: unknown[] = [];
    await rt.join("chat:1", (payload, message) => got.push([payload, message.from]));
    const first = await api.publish("chat:1", { n: 1 }, { idempotencyKey: "k-1" });
    assert.equal(first.recipients, 1);
    assert.equal(first.duplicate, false);
    assert.equal(first.offset, 1);
    const again = await api.publish("chat:1", { n: 1 }, { idempotencyKey: "k-1" });
    assert.equal(again.duplicate, true);
    assert.equal(again.offset, 1);
    await eventually(() => got.length === 1, 3000, "delivery");
    assert.deepEqual(got, [[{ n: 1 }, "server"]]);

    const page = await api.history<{ n: number }>("chat:1");
    assert.deepEqual(page.messages.map((m) => m.payload), [{ n: 1 }]);
    assert.equal(page.more, false);
    await assert.rejects(api.publish("bad room", 1), TypeError);
  } finally {
    await rt.close();
  }
});

Deno.test("server SDK: revoke closes the user's connection; unrevoke lifts it; presence lists users", async () => {
  await using ts = await startServer({ API_KEY, PRESENCE: "true" });
  const api = new RealtimeApi({ url: ts.httpUrl, apiKey: API_KEY });
  const token = await mintToken(SECRET, { sub: "mallory", rooms: ["lobby"], info: { name: "M" } });
  const rt = connect(ts.wsUrl, { token, reconnect: false });
  try {
    await rt.join("lobby", () => {});
    await eventually(async () => (await api.presence("lobby")).count === 1, 3000, "present");
    assert.deepEqual((await api.presence("lobby")).members, [
      { userId: "mallory", connections: 1, info: { name: "M" } },
    ]);
    const closed = new Promise<number>((resolve) => rt.on("close", (code) => resolve(code)));
    const result = await api.revoke({ userId: "mallory" }, { reason: "test" });
    assert.equal(await closed, 4403);
    assert.ok(result.until > Date.now() / 1000);
    const list = await api.revocations();
    assert.equal(list.total, 1);
    assert.equal(list.revocations[0]!.userId, "mallory");
    assert.equal(await api.unrevoke({ userId: "mallory" }), true);
    assert.equal(await api.unrevoke({ userId: "mallory" }), false);
    await assert.rejects(
      new RealtimeApi({ url: ts.httpUrl, apiKey: "wrong-key" }).presence("lobby"),
      (e: unknown) => e instanceof RealtimeApiError && e.status === 401,
    );
  } finally {
    await rt.close();
  }
});

Deno.test("server SDK: RS256 and ES256 tokens pass the server's verifier holding the public key", async () => {
  for (const alg of ["RS256", "ES256"] as const) {
    const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
    const config = loadConfig({ JWT_PUBLIC_KEY: await jose.exportSPKI(publicKey) });
    const verifier = await createJwtVerifier(config.auth.jwt);
    const pem = await jose.exportPKCS8(privateKey);
    const jwk = await jose.exportJWK(privateKey);
    for (const key of [pem, jwk, privateKey]) {
      const token = await mintToken(key, { sub: `u-${alg}`, alg, rooms: ["a:*"], jti: "t1" });
      const principal = await verifier.verify(token);
      assert.equal(principal.userId, `u-${alg}`);
      assert.deepEqual(principal.rooms, ["a:*"]);
      assert.equal(principal.jti, "t1");
    }
  }
  await assert.rejects(mintToken("short", { sub: "a" }), RangeError);
  await assert.rejects(mintToken(SECRET, { sub: "a", alg: "RS256" }), Error);
  await assert.rejects(mintToken(SECRET, { sub: "" }), TypeError);
});

Deno.test("server SDK: webhook signatures match the server's scheme both ways", async () => {
  const secret = "w".repeat(32);
  const body = '{"id":"b1","events":[]}';
  const now = Date.now();
  assert.equal(
    await verifyWebhook(secret, body, signBody(secret, body, now), { nowMs: now }),
    true,
  );
  assert.equal(
    verifyBody(secret, body, await signWebhook(secret, body, now), { nowMs: now }),
    true,
  );
  assert.equal(await signWebhook(secret, body, now), signBody(secret, body, now));
  const header = signBody(secret, body, now);
  assert.equal(await verifyWebhook(secret, body + " ", header, { nowMs: now }), false);
  assert.equal(await verifyWebhook("x".repeat(32), body, header, { nowMs: now }), false);
  assert.equal(await verifyWebhook(secret, body, header, { nowMs: now + 301_000 }), false);
  assert.equal(await verifyWebhook(secret, body, null), false);
  assert.equal(await verifyWebhook(secret, body, "t=1,v1=zz"), false);
});

Deno.test("server SDK: a 503 is retried after its Retry-After; the budget ends in the error", async () => {
  let calls = 0;
  const times: number[] = [];
  const stub = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    await req.text();
    times.push(Date.now());
    calls++;
    if (calls <= 2) {
      return Response.json({ error: { code: "unavailable", message: "down" } }, {
        status: 503,
        headers: { "retry-after": "1" },
      });
    }
    return Response.json({ recipients: 3 }, { status: 202 });
  });
  try {
    const url = `http://127.0.0.1:${stub.addr.port}`;
    const api = new RealtimeApi({ url, apiKey: "k" });
    assert.equal((await api.publish("r", 1)).recipients, 3);
    assert.equal(calls, 3);
    assert.ok(times[1]! - times[0]! >= 950, "waited for Retry-After");
    calls = 0;
    const impatient = new RealtimeApi({ url, apiKey: "k", maxRetries: 1, maxRetryDelayMs: 10 });
    await assert.rejects(
      impatient.publish("r", 1),
      (e: unknown) =>
        e instanceof RealtimeApiError && e.status === 503 && e.code === "unavailable" &&
        e.retryAfterMs === 1000,
    );
    assert.equal(calls, 2);
  } finally {
    await stub.shutdown();
  }
});
