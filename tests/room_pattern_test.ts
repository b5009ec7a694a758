/**
 * Room patterns: the wildcard matcher's semantics, and that a pattern built to
 * make a backtracking matcher take minutes is answered at once while the
 * server keeps serving others.
 */
import assert from "node:assert/strict";
import { compilePattern } from "../lib/core/room_policy.ts";
import { connect, SECRET, token, writePolicy } from "./_helpers.ts";
import { freePort, spawnServer } from "./_process.ts";

const matches = (pattern: string, room: string, sub = "u") =>
  compilePattern(pattern, sub).test(room);

Deno.test("matcher: empty pattern and empty stars", () => {
  assert.ok(matches("", ""));
  assert.ok(!matches("", "a"));
  assert.ok(matches("*", ""));
  assert.ok(matches("*", "anything:at/all"));
  assert.ok(matches("**", ""));
  assert.ok(matches("***", "abc"));
});

Deno.test("matcher: literals must match exactly, whole name", () => {
  assert.ok(matches("lobby", "lobby"));
  assert.ok(!matches("lobby", "lobby2"));
  assert.ok(!matches("lobby", "xlobby"));
  assert.ok(!matches("a.b", "aXb"), "regex characters are literal");
  assert.ok(!matches("a+", "aa"));
  assert.ok(matches("(x)|[y]^$", "(x)|[y]^$"));
});

Deno.test("matcher: leading, trailing and inner stars", () => {
  assert.ok(matches("chat:*", "chat:"));
  assert.ok(matches("chat:*", "chat:general"));
  assert.ok(!matches("chat:*", "chatter"));
  assert.ok(matches("*:inbox", "user:alice:inbox"));
  assert.ok(!matches("*:inbox", "user:alice:inbox2"));
  assert.ok(matches("a*b*c", "abc"));
  assert.ok(matches("a*b*c", "axxbyyc"));
  assert.ok(!matches("a*b*c", "axxcyyb"));
  assert.ok(matches("a*a", "aa"));
  assert.ok(!matches("a*a", "a"), "pieces never overlap");
  assert.ok(matches("*ab*ab*", "abab"));
  assert.ok(!matches("*ab*ab*", "aba"));
  assert.ok(matches("*a*b", "aab"), "a later b still matches after an early a");
  assert.ok(matches("x*yz", "xyzyz"), "the last piece anchors at the end");
  assert.ok(!matches("x*yz", "xyzy"));
});

Deno.test("matcher: consecutive stars behave as one", () => {
  for (const room of ["ab", "a:b", "a::::b"]) {
    assert.equal(matches("a**b", room), matches("a*b", room), room);
    assert.equal(matches("a***b", room), true, room);
  }
  assert.ok(!matches("a**b", "ba"));
});

Deno.test("matcher: {sub} is the user id, taken literally", () => {
  assert.ok(matches("user:{sub}", "user:alice", "alice"));
  assert.ok(!matches("user:{sub}", "user:bob", "alice"));
  assert.ok(!matches("user:{sub}", "user:abc", "a*"), "a * in the user id is not a wildcard");
  assert.ok(matches("user:{sub}", "user:a*", "a*"));
  assert.ok(!matches("{sub}:x", "anything:x", "*"));
  assert.ok(matches("{sub}:x", "*:x", "*"));
  assert.ok(matches("p:*:{sub}:*", "p:1:alice:2", "alice"));
  assert.ok(!matches("p:*:{sub}:*", "p:1:bob:2", "alice"));
  assert.ok(matches("{sub}{sub}", "abab", "ab"));
  assert.ok(matches("*{sub}*", "x-a*b-y", "a*b"));
  assert.ok(!matches("*{sub}*", "x-aXb-y", "a*b"));
  assert.ok(matches("{sub}", "", ""), "an empty user id is empty, not a wildcard");
});

Deno.test("matcher: compiled patterns are shared between connections", () => {
  assert.equal(compilePattern("chat:*", "alice"), compilePattern("chat:*", "bob"));
  assert.equal(compilePattern("user:{sub}", "alice"), compilePattern("user:alice", "bob"));
  assert.notEqual(compilePattern("user:{sub}", "a*"), compilePattern("user:a*", "x"));
});

Deno.test("matcher: a pattern that makes regexes backtrack for minutes is linear here", () => {
  const evil = compilePattern("*a*a*a*a*a*a*a*a*b", "");
  assert.equal(evil.test("a".repeat(60)), false);
  assert.equal(evil.test("a".repeat(10_000)), false);
  assert.equal(evil.test(`${"a".repeat(100)}b`), true);
});

Deno.test("a ReDoS-shaped pattern in a claim and a policy: forbidden at once, others served", async () => {
  await using policy = await writePolicy([{ room: "*a*a*a*a*a*a*a*a*b", users: "*" }]);
  const port = freePort();
  // A subprocess, so that a frozen server could not freeze this test's timers too.
  await using server = await spawnServer(["run", "-A", "main.ts"], {
    port,
    env: {
      PORT: String(port),
      HOSTNAME: "127.0.0.1",
      JWT_SECRET: SECRET,
      ROOM_POLICY: policy.path,
      BUS: "memory",
      LOG_LEVEL: "error",
    },
  });
  const clients = [];
  try {
    const evilToken = await token("mallory", { rooms: ["*a*a*a*a*a*a*a*a*b"] });
    const mallory = (await connect(`${server.wsUrl}?token=${evilToken}`)).client;
    const bystander = (await connect(`${server.wsUrl}?token=${await token("bob")}`)).client;
    clients.push(mallory, bystander);
    const room = "a".repeat(60);
    // Backtracking took 85 s for this; 2 s leaves room for a loaded machine.
    const [denied, pong] = await Promise.all([
      mallory.request({ type: "join", room, id: "evil" }, 2000),
      bystander.request({ type: "ping", id: "alive" }, 2000),
    ]);
    assert.equal(denied.type, "error");
    assert.equal(denied.code, "forbidden");
    assert.equal(pong.type, "pong");
    const again = await mallory.request({ type: "join", room: `${room}b`, id: "ok" }, 2000);
    assert.equal(again.type, "joined", "the pattern still grants what it should");
  } finally {
    for (const c of clients) await c.close();
  }
});
