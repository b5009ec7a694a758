import assert from "node:assert/strict";
import { MemoryAuditSink } from "../lib/audit.ts";
import { type Client, connect, rawHandshake, startServer, token } from "./_helpers.ts";

Deno.test("each token source is accepted: header, subprotocol, query, cookie", async () => {
  await using ts = await startServer();
  const t = await token("alice");
  const byHeader = await connect(ts.wsUrl, { headers: { authorization: `Bearer ${t}` } });
  assert.equal(byHeader.welcome.userId, "alice");
  const byProtocol = await connect(ts.wsUrl, { protocols: ["bearer", t] });
  assert.equal(byProtocol.client.ws.protocol, "bearer", "server answers the bearer protocol");
  const byQuery = await connect(`${ts.wsUrl}?token=${t}`);
  const byCookie = await connect(ts.wsUrl, {
    headers: { cookie: `other=1; realtime_token=${t}` },
  });
  for (const { client } of [byHeader, byProtocol, byQuery, byCookie]) await client.close();
  const sources = ts.audit.of("connect").map((f) => f.source);
  assert.deepEqual(sources, ["header", "subprotocol", "query", "cookie"]);
});

Deno.test("welcome carries connection id, user id, expiry and instance id", async () => {
  await using ts = await startServer();
  const t = await token("alice", { ttlSec: 600 });
  const { client, welcome } = await connect(`${ts.wsUrl}?token=${t}`);
  assert.equal(typeof welcome.connectionId, "string");
  assert.equal(welcome.userId, "alice");
  assert.ok(typeof welcome.expiresAt === "number" && welcome.expiresAt > Date.now() / 1000);
  assert.equal(welcome.instanceId, ts.server.instanceId);
  await client.close();
});

Deno.test("the token is never echoed in the subprotocol answer, a body or the audit log", async () => {
  const audit = new MemoryAuditSink();
  await using ts = await startServer({}, { audit });
  const t = await token("alice");
  const ok = await rawHandshake(ts.port, "/ws", { "sec-websocket-protocol": `bearer, ${t}` });
  assert.equal(ok.status, 101);
  assert.equal(ok.headers.get("sec-websocket-protocol"), "bearer");
  const bad = t.slice(0, -4) + "AAAA";
  const refused = await rawHandshake(ts.port, `/ws?token=${bad}`);
  assert.equal(refused.status, 401);
  assert.ok(!refused.body.includes(bad.split(".")[2]!));
  const log = JSON.stringify(audit.records);
  assert.ok(!log.includes(t.split(".")[2]!), "no signature in the audit log");
  assert.ok(!log.includes(bad.split(".")[2]!));
});

Deno.test("refusals: 401 missing/invalid with WWW-Authenticate, 426, 405, 404", async () => {
  await using ts = await startServer();
  const missing = await rawHandshake(ts.port, "/ws");
  assert.equal(missing.status, 401);
  assert.match(missing.headers.get("www-authenticate") ?? "", /^Bearer realm="realtime"$/);
  assert.equal(missing.body.trim(), "missing token");
  const invalid = await rawHandshake(ts.port, "/ws?token=not-a-jwt");
  assert.equal(invalid.status, 401);
  assert.match(invalid.headers.get("www-authenticate") ?? "", /error="invalid_token"/);
  assert.equal(invalid.body.trim(), "invalid token");
  const plain = await fetch(`${ts.httpUrl}/ws`);
  assert.equal(plain.status, 426);
  assert.equal(plain.headers.get("upgrade"), "websocket");
  await plain.body?.cancel();
  const post = await fetch(`${ts.httpUrl}/ws`, { method: "POST" });
  assert.equal(post.status, 405);
  await post.body?.cancel();
  const nothing = await fetch(`${ts.httpUrl}/nope`);
  assert.equal(nothing.status, 404);
  await nothing.body?.cancel();
  const reasons = ts.audit.of("auth_failure").map((f) => f.reason);
  assert.deepEqual(reasons, ["missing", "malformed"]);
});

Deno.test("origin: default same-origin only; allow-list; no Origin allowed", async () => {
  await using ts = await startServer();
  await using listed = await startServer({
    ALLOWED_ORIGINS: "https://app.example.com, http://localhost:3000",
  });
  const t = await token("alice");
  const evil = await rawHandshake(ts.port, `/ws?token=${t}`, { origin: "https://evil.example" });
  assert.equal(evil.status, 403);
  assert.equal(evil.body.trim(), "origin not allowed");
  const same = await rawHandshake(ts.port, `/ws?token=${t}`, {
    origin: `http://127.0.0.1:${ts.port}`,
  });
  assert.equal(same.status, 101);
  const none = await rawHandshake(ts.port, `/ws?token=${t}`);
  assert.equal(none.status, 101);
  const ok = await rawHandshake(listed.port, `/ws?token=${t}`, {
    origin: "https://app.example.com",
  });
  assert.equal(ok.status, 101);
  const sameButUnlisted = await rawHandshake(listed.port, `/ws?token=${t}`, {
    origin: `http://127.0.0.1:${listed.port}`,
  });
  assert.equal(sameButUnlisted.status, 403, "an allow-list replaces the same-origin default");
});

Deno.test("per-IP handshake rate: 429 with Retry-After", async () => {
  await using ts = await startServer({ HANDSHAKES_PER_MINUTE_PER_IP: "3" });
  for (let i = 0; i < 3; i++) assert.equal((await rawHandshake(ts.port, "/ws")).status, 401);
  const limited = await rawHandshake(ts.port, "/ws");
  assert.equal(limited.status, 429);
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
});

Deno.test("X-Forwarded-For is ignored unless TRUST_PROXY=1", async () => {
  await using direct = await startServer({ HANDSHAKES_PER_MINUTE_PER_IP: "2" });
  await using proxied = await startServer({ HANDSHAKES_PER_MINUTE_PER_IP: "2", TRUST_PROXY: "1" });
  // Spoofed addresses do not buy a client fresh buckets...
  for (let i = 0; i < 2; i++) {
    await rawHandshake(direct.port, "/ws", { "x-forwarded-for": `10.0.0.${i}` });
  }
  assert.equal(
    (await rawHandshake(direct.port, "/ws", { "x-forwarded-for": "10.0.0.9" })).status,
    429,
  );
  // ...but behind a trusted proxy each forwarded address has its own.
  for (let i = 0; i < 3; i++) {
    const r = await rawHandshake(proxied.port, "/ws", { "x-forwarded-for": `10.0.0.${i}` });
    assert.equal(r.status, 401);
  }
});

Deno.test("connection caps: 503 globally, 429 per user", async () => {
  await using ts = await startServer({ MAX_CONNECTIONS: "3", MAX_CONNECTIONS_PER_USER: "2" });
  const clients: Client[] = [];
  try {
    const a = await token("alice");
    clients.push((await connect(`${ts.wsUrl}?token=${a}`)).client);
    clients.push((await connect(`${ts.wsUrl}?token=${a}`)).client);
    const perUser = await rawHandshake(ts.port, `/ws?token=${a}`);
    assert.equal(perUser.status, 429);
    assert.equal(perUser.body.trim(), "too many connections for this user");
    clients.push((await connect(`${ts.wsUrl}?token=${await token("bob")}`)).client);
    const full = await rawHandshake(ts.port, `/ws?token=${await token("carol")}`);
    assert.equal(full.status, 503);
    assert.equal(full.body.trim(), "connection limit reached");
    await clients.pop()!.close();
    const { client } = await connect(`${ts.wsUrl}?token=${await token("carol")}`);
    clients.push(client);
  } finally {
    for (const c of clients) await c.close();
  }
});

Deno.test("a browser offering only other subprotocols still gets an answer-free upgrade", async () => {
  await using ts = await startServer();
  const t = await token("alice");
  const r = await rawHandshake(ts.port, `/ws?token=${t}`, { "sec-websocket-protocol": "chat" });
  assert.equal(r.status, 101);
  assert.equal(r.headers.get("sec-websocket-protocol"), null);
});

Deno.test("the first credential source present wins, even when it is bad", async () => {
  await using ts = await startServer();
  const good = await token("alice");
  const r = await rawHandshake(ts.port, `/ws?token=${good}`, { authorization: "Bearer garbage" });
  assert.equal(r.status, 401);
});

Deno.test("a malformed WebSocket handshake is a 400, not a server error", async () => {
  await using ts = await startServer();
  const t = await token("alice");
  const r = await rawHandshake(ts.port, `/ws?token=${t}`, { "sec-websocket-key": "" });
  assert.equal(r.status, 400);
  assert.equal(r.body.trim(), "invalid WebSocket handshake");
  assert.equal(ts.audit.of("internal_error").length, 0);
});

Deno.test("cookies: with ALLOWED_ORIGINS=* only the same origin may use one (403 cookie_cross_origin)", async () => {
  await using ts = await startServer({ ALLOWED_ORIGINS: "*" });
  const t = await token("victim");
  const cookie = { cookie: `realtime_token=${t}` };
  const evil = await rawHandshake(ts.port, "/ws", { ...cookie, origin: "http://evil.example" });
  assert.equal(evil.status, 403);
  assert.equal(evil.body.trim(), "origin not allowed to use cookie credentials");
  const refusals = ts.audit.of("handshake_refused");
  assert.deepEqual(refusals.map((f) => [f.status, f.reason, f.origin]), [
    [403, "cookie_cross_origin", "http://evil.example"],
  ]);
  assert.equal(ts.audit.of("connect").length, 0);
  const same = await rawHandshake(ts.port, "/ws", {
    ...cookie,
    origin: `http://127.0.0.1:${ts.port}`,
  });
  assert.equal(same.status, 101, "same origin keeps working");
  const noOrigin = await rawHandshake(ts.port, "/ws", cookie);
  assert.equal(noOrigin.status, 101, "non-browser clients send no Origin");
  // Other credential sources keep today's rule: * allows any origin.
  const byQuery = await rawHandshake(ts.port, `/ws?token=${t}`, {
    origin: "http://evil.example",
  });
  assert.equal(byQuery.status, 101);
  const byProtocol = await rawHandshake(ts.port, "/ws", {
    origin: "http://evil.example",
    "sec-websocket-protocol": `bearer, ${t}`,
  });
  assert.equal(byProtocol.status, 101);
  const byHeader = await rawHandshake(ts.port, "/ws", {
    origin: "http://evil.example",
    authorization: `Bearer ${t}`,
    ...cookie,
  });
  assert.equal(byHeader.status, 101, "a header credential wins over the cookie");
  assert.equal(ts.audit.of("handshake_refused").length, 1);
});

Deno.test("cookies: an origin listed by name may use one, an unlisted one may not", async () => {
  await using ts = await startServer({ ALLOWED_ORIGINS: "https://app.example.com, *" });
  const cookie = { cookie: `realtime_token=${await token("alice")}` };
  const listed = await rawHandshake(ts.port, "/ws", {
    ...cookie,
    origin: "https://app.example.com",
  });
  assert.equal(listed.status, 101);
  const other = await rawHandshake(ts.port, "/ws", {
    ...cookie,
    origin: "https://other.example",
  });
  assert.equal(other.status, 403);
  assert.equal(ts.audit.of("handshake_refused")[0]?.reason, "cookie_cross_origin");
});

Deno.test("cookies: without an allow-list the origin check comes first; a bad same-origin cookie is 401", async () => {
  // The cookie rule runs where credentials are read: an origin refused outright
  // is still "origin not allowed", and a bad cookie from the same origin still 401.
  await using ts = await startServer();
  const evil = await rawHandshake(ts.port, "/ws", {
    cookie: `realtime_token=${await token("alice")}`,
    origin: "http://evil.example",
  });
  assert.equal(evil.status, 403);
  assert.equal(evil.body.trim(), "origin not allowed");
  const bad = await rawHandshake(ts.port, "/ws", {
    cookie: "realtime_token=garbage",
    origin: `http://127.0.0.1:${ts.port}`,
  });
  assert.equal(bad.status, 401);
});

Deno.test("RFC 6455 §4.2.1: a version other than 13, no version, or a key not 16 base64 bytes is a 400", async () => {
  await using ts = await startServer();
  const t = await token("alice");
  const b64 = (n: number) => btoa(String.fromCharCode(...new Uint8Array(n).fill(7)));
  const cases: Array<[string, Record<string, string>]> = [
    ["version 8", { "sec-websocket-version": "8" }],
    ["version 13 twice", { "sec-websocket-version": "13, 13" }],
    ["no version", { "sec-websocket-version": "" }],
    ["a 4 KB key that is not base64", { "sec-websocket-key": "!".repeat(4096) }],
    ["a key of 15 bytes", { "sec-websocket-key": b64(15) }],
    ["a key of 17 bytes", { "sec-websocket-key": b64(17) }],
    ["a key of 16 bytes without padding", { "sec-websocket-key": b64(16).slice(0, 22) }],
    ["no key", { "sec-websocket-key": "" }],
  ];
  for (const [what, headers] of cases) {
    const r = await rawHandshake(ts.port, `/ws?token=${t}`, headers);
    assert.equal(r.status, 400, what);
    assert.equal(r.body.trim(), "invalid WebSocket handshake", what);
  }
  const wrongVersion = await rawHandshake(ts.port, `/ws?token=${t}`, {
    "sec-websocket-version": "8",
  });
  assert.equal(wrongVersion.headers.get("sec-websocket-version"), "13", "the version we speak");
  assert.equal(ts.server.stats().connections, 0, "no socket was created");
  assert.equal(ts.audit.of("connect").length, 0);
  assert.equal(ts.audit.of("auth_failure").length, 0, "refused before the credential is read");
  const good = await rawHandshake(ts.port, `/ws?token=${t}`, { "sec-websocket-key": b64(16) });
  assert.equal(good.status, 101, "a well-formed handshake still upgrades");
});

Deno.test("a malformed handshake does not spend the one-time ticket it carries", async () => {
  await using ts = await startServer();
  const issued = await fetch(`${ts.httpUrl}/ticket`, {
    method: "POST",
    headers: { authorization: `Bearer ${await token("alice")}` },
  });
  const { ticket } = await issued.json();
  const bad = await rawHandshake(ts.port, `/ws?ticket=${ticket}`, {
    "sec-websocket-version": "8",
  });
  assert.equal(bad.status, 400);
  const good = await rawHandshake(ts.port, `/ws?ticket=${ticket}`);
  assert.equal(good.status, 101, "the ticket is still good");
});
