/**
 * The Python backend SDK (`clients/python/realtime_sdk.py`, standard library
 * only) run by the system's `/usr/bin/python3` against a real server: it
 * publishes (deduplicated by `idempotency_key`) to a room a TypeScript client
 * has joined, reads history and presence, revokes a connected user (whose
 * socket closes 4403) and lifts it, mints a token the server accepts,
 * retries a 503 after its `Retry-After`, and verifies and makes webhook
 * signatures interchangeable with the server's own.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../packages/client/src/client.ts";
import { signBody, verifyBody } from "../lib/webhooks/signature.ts";
import { eventually, SECRET, startServer, token } from "./_helpers.ts";

const API_KEY = "python-sdk-api-key-long-enough-000000000";
const PYTHON = "/usr/bin/python3";
const SCRIPT = new URL("../clients/python/sdk_check.py", import.meta.url).pathname;

interface Report {
  publish: { recipients: number; offset: number; duplicate: boolean };
  history: unknown[];
  presence: string[];
  unrevoke: [boolean, boolean];
  token: string;
  wrong_key: [number, string];
  retried: { recipients: number; seconds: number };
  webhook: boolean[];
  signed: string;
}

/** Answers 503 with `Retry-After: 1` twice, then 202. */
function flakyServer(): Deno.HttpServer<Deno.NetAddr> {
  let calls = 0;
  return Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    await req.text();
    if (++calls <= 2) {
      const error = { code: "unavailable", message: "down" };
      return Response.json({ error }, { status: 503, headers: { "retry-after": "1" } });
    }
    return Response.json({ recipients: 7 }, { status: 202 });
  });
}

Deno.test("python SDK: every call against a real server, with /usr/bin/python3", async () => {
  await using ts = await startServer({ API_KEY, HISTORY_SIZE: "10", PRESENCE: "true" });
  const stub = flakyServer();
  const alice = connect(ts.wsUrl, { token: await token("alice", { rooms: ["chat:*"] }) });
  const victim = connect(ts.wsUrl, {
    token: await token("victim", { rooms: ["chat:*"] }),
    reconnect: false,
  });
  try {
    const got: unknown[] = [];
    await alice.join("chat:py", (payload) => got.push(payload));
    await victim.join("chat:py", () => {});
    const victimClosed = new Promise<number>((resolve) => victim.on("close", resolve));
    const webhookSecret = "w".repeat(32);
    const webhookBody = '{"id":"b1","events":[{"name":"room_occupied"}]}';
    const { code, stdout, stderr } = await new Deno.Command(PYTHON, {
      args: [SCRIPT],
      env: {
        RT_URL: ts.httpUrl,
        RT_API_KEY: API_KEY,
        RT_SECRET: SECRET,
        RT_STUB_URL: `http://127.0.0.1:${stub.addr.port}`,
        RT_WEBHOOK_SECRET: webhookSecret,
        RT_WEBHOOK_BODY: webhookBody,
        RT_WEBHOOK_HEADER: signBody(webhookSecret, webhookBody, Date.now()),
      },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const report = JSON.parse(new TextDecoder().decode(stdout)) as Report;

    await eventually(() => got.length === 1, 3000, "the python publish reached the client");
    assert.deepEqual(got, [{ text: "from python" }], "delivered once despite the repeat");
    assert.equal(report.publish.recipients, 2);
    assert.deepEqual(report.history, [{ text: "from python" }]);
    assert.deepEqual(report.presence, ["alice", "victim"]);
    assert.equal(await victimClosed, 4403);
    assert.deepEqual(report.unrevoke, [true, false]);
    assert.deepEqual(report.wrong_key, [401, "unauthorized"]);
    assert.equal(report.retried.recipients, 7);
    assert.ok(
      report.retried.seconds >= 1.9,
      `waited for Retry-After twice: ${report.retried.seconds}s`,
    );
    assert.deepEqual(report.webhook, [true, false, false, false, false]);
    assert.equal(verifyBody(webhookSecret, webhookBody, report.signed), true);

    const py = connect(ts.wsUrl, { token: report.token, reconnect: false });
    try {
      await new Promise((resolve) => py.on("open", resolve));
      assert.equal(py.userId, "py-user");
      await py.join("chat:py", () => {});
      await eventually(
        () => alice.presence("chat:py")?.members.some((m) => m.userId === "py-user") === true,
        3000,
        "the python-minted user in presence",
      );
      const member = alice.presence("chat:py")!.members.find((m) => m.userId === "py-user");
      assert.deepEqual(member?.info, { lang: "python" });
    } finally {
      await py.close();
    }
  } finally {
    await Promise.all([alice.close(), victim.close()]);
    await stub.shutdown();
  }
});
