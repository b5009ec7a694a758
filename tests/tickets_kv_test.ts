/**
 * Tickets on a KV store that cannot be reached: `POST /ticket` and the
 * handshake answer 503 with `Retry-After` instead of failing open or 500.
 *
 * @module
 */
import assert from "node:assert/strict";
import { KvTicketStore } from "../lib/store/tickets/kv.ts";
import { startServer, token } from "./_helpers.ts";

Deno.test("tickets on an unreachable KV: 503 with Retry-After on /ticket and on the handshake", async () => {
  const kv = await Deno.openKv(":memory:");
  const tickets = new KvTicketStore({ kv, ttlMs: 30_000, unavailableAfterMs: 100 });
  await using ts = await startServer({}, { tickets });
  const jwt = await token("alice");
  const ok = await fetch(`${ts.httpUrl}/ticket`, {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}` },
  });
  assert.equal(ok.status, 200);
  const { ticket } = await ok.json();
  kv.close();
  const issue = await fetch(`${ts.httpUrl}/ticket`, {
    method: "POST",
    headers: { authorization: `Bearer ${jwt}` },
  });
  await issue.body?.cancel();
  assert.equal(issue.status, 503);
  assert.ok(issue.headers.get("retry-after"));
  const redeem = await fetch(`${ts.httpUrl}/ws?ticket=${ticket}`, {
    headers: {
      upgrade: "websocket",
      connection: "upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
    },
  });
  await redeem.body?.cancel();
  assert.equal(redeem.status, 503);
  assert.equal(redeem.headers.get("retry-after"), "1");
  const health = ts.server.health();
  assert.deepEqual([health.status, health.store.status, health.store.transport], [
    "degraded",
    "degraded",
    "kv",
  ]);
});
