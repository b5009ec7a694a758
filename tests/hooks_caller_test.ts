/**
 * The hook caller against real, hostile backends: a 10 MB answer, a body at
 * one byte a second, a redirect to another host, invalid JSON, a wrong
 * shape, a dead port, each cut off within the timeout and counted as a
 * failure; the concurrency cap; the circuit breaker opening after repeated
 * failures, answering at once, and closing after its cool-down.
 *
 * @module
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { MemoryAuditSink } from "../lib/audit.ts";
import { systemClock } from "../lib/clock.ts";
import { HookCaller, type HookCallerOptions, type HookFailure } from "../lib/hooks/mod.ts";
import { FakeClock } from "./_helpers.ts";
import { answer, startHookBackend } from "./_hook_backend.ts";

const HOOK_SECRET = "hook-secret-that-is-long-enough-012345";
const Allow = z.object({ allow: z.boolean() });
const REQUEST = {
  userId: "u",
  claims: { sub: "u", exp: null, rooms: [], rooms_readonly: [], roles: [] },
  connectionId: "c",
  ip: "127.0.0.1",
};

function caller(url: string, options: Partial<HookCallerOptions> = {}): HookCaller {
  return new HookCaller({
    hook: "join",
    url,
    secret: HOOK_SECRET,
    timeoutMs: 500,
    concurrency: 256,
    breakerFailures: 5,
    breakerCooldownMs: 5000,
    clock: systemClock,
    audit: new MemoryAuditSink(),
    ...options,
  });
}

/** A body that trickles one byte a second until cancelled. */
function trickle(): Response {
  let timer: ReturnType<typeof setInterval> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("{"));
      timer = setInterval(() => controller.enqueue(new TextEncoder().encode(" ")), 1000);
    },
    cancel() {
      clearInterval(timer);
    },
  });
  return new Response(body, { headers: { "content-type": "application/json" } });
}

const HOSTILE: [string, HookFailure, () => Response][] = [
  ["a 10 MB answer", "too_large", () => new Response("[" + "0,".repeat(5 * 1024 * 1024) + "0]")],
  ["one byte a second", "timeout", trickle],
  [
    "a redirect to another host",
    "redirect",
    () => new Response(null, { status: 307, headers: { location: "http://198.51.100.1/steal" } }),
  ],
  ["invalid JSON", "invalid_json", () => new Response("{allow: true")],
  ["a wrong shape", "bad_shape", () => answer({ allow: "yes" })],
  ["a 500", "status", () => answer({ allow: true }, 500)],
  ["a __proto__ key", "invalid_json", () => new Response('{"allow":true,"__proto__":{"x":1}}')],
];

for (const [what, failure, respond] of HOSTILE) {
  Deno.test(`hook caller: ${what} is cut off within the timeout and fails (${failure})`, async () => {
    await using backend = startHookBackend(HOOK_SECRET, respond);
    const hook = caller(`${backend.url}/join`);
    const started = performance.now();
    const result = await hook.call(REQUEST, Allow);
    const took = performance.now() - started;
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.failure, failure);
    assert.ok(took < 900, `within the 500 ms timeout (+ slack), took ${took.toFixed(0)} ms`);
    assert.equal(backend.calls.length, 1, "the redirect is never followed");
    assert.ok(backend.calls[0]!.signed);
  });
}

Deno.test("hook caller: a dead backend opens the breaker, which answers at once and closes after the cool-down", async () => {
  const clock = new FakeClock();
  const audit = new MemoryAuditSink();
  let healthy = false;
  await using backend = startHookBackend(
    HOOK_SECRET,
    () => healthy ? answer({ allow: true }) : answer({ error: "down" }, 503),
  );
  const hook = caller(`${backend.url}/join`, {
    clock,
    audit,
    breakerFailures: 3,
    breakerCooldownMs: 5000,
  });
  for (let i = 0; i < 3; i++) assert.equal((await hook.call(REQUEST, Allow)).ok, false);
  assert.equal(backend.calls.length, 3);
  assert.deepEqual(audit.of("hook_breaker").map((r) => r.state), ["open"]);
  healthy = true;
  const started = performance.now();
  const refused = await hook.call(REQUEST, Allow);
  assert.ok(performance.now() - started < 20, "answered at once");
  assert.equal(!refused.ok && refused.failure, "open");
  assert.equal(backend.calls.length, 3, "the backend is not called while open");
  clock.advance(4999);
  assert.equal((await hook.call(REQUEST, Allow)).ok, false, "still open");
  clock.advance(1);
  assert.equal((await hook.call(REQUEST, Allow)).ok, true, "one trial call goes through");
  assert.equal(backend.calls.length, 4);
  assert.deepEqual(audit.of("hook_breaker").map((r) => r.state), ["open", "half_open", "closed"]);
  assert.equal((await hook.call(REQUEST, Allow)).ok, true);
});

Deno.test("hook caller: a dead port fails as a network error, and a failed trial reopens the breaker", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const clock = new FakeClock();
  const audit = new MemoryAuditSink();
  const hook = caller(`http://127.0.0.1:${port}/join`, { clock, audit, breakerFailures: 1 });
  const first = await hook.call(REQUEST, Allow);
  assert.equal(!first.ok && first.failure, "network");
  assert.equal((await hook.call(REQUEST, Allow)).ok, false);
  clock.advance(5000);
  assert.equal((await hook.call(REQUEST, Allow)).ok, false, "the trial call fails");
  assert.deepEqual(audit.of("hook_breaker").map((r) => r.state), ["open", "half_open", "open"]);
  assert.equal(audit.of("hook_failed").length, 3);
});

Deno.test("hook caller: past HOOK_CONCURRENCY a call fails at once", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  await using backend = startHookBackend(HOOK_SECRET, async () => {
    await gate;
    return answer({ allow: true });
  });
  const hook = caller(`${backend.url}/join`, { concurrency: 2, timeoutMs: 3000 });
  const inFlight = [hook.call(REQUEST, Allow), hook.call(REQUEST, Allow)];
  const third = await hook.call(REQUEST, Allow);
  assert.equal(!third.ok && third.failure, "busy");
  release();
  for (const result of await Promise.all(inFlight)) assert.equal(result.ok, true);
  assert.equal(hook.inFlight, 0);
});
