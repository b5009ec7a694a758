/**
 * MAX_PAYLOAD_DEPTH: a payload nested deeper than the limit is refused with
 * `bad_request` on the socket and 400 on the publish API, and reaches no one,
 * so that one member cannot crash the recursive JSON parsers of the others
 * (checked with a real Python client, whose `json.loads` recurses).
 */
import assert from "node:assert/strict";
import { jsonDeeperThan, parseClientFrame } from "../lib/protocols/native/protocol.ts";
import { connectAs, join, startServer, token } from "./_helpers.ts";

const API_KEY = "k".repeat(40);
const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
const frame = (depth: number, id: string) =>
  `{"type":"message","room":"r","payload":${nested(depth)},"id":"${id}"}`;

Deno.test("jsonDeeperThan: counts arrays and objects, skips strings and escapes", () => {
  assert.equal(jsonDeeperThan("1", 0), false);
  assert.equal(jsonDeeperThan("[]", 0), true);
  assert.equal(jsonDeeperThan("[]", 1), false);
  assert.equal(jsonDeeperThan('{"a":[{"b":[]}]}', 3), true);
  assert.equal(jsonDeeperThan('{"a":[{"b":[]}]}', 4), false);
  assert.equal(jsonDeeperThan("[[],[],[]]", 2), false, "siblings do not add up");
  assert.equal(jsonDeeperThan(`["${"[".repeat(100)}"]`, 1), false, "brackets in strings");
  assert.equal(jsonDeeperThan(`["\\"[[[[", 1]`, 1), false, "an escaped quote stays in the string");
  assert.equal(
    jsonDeeperThan(`["\\\\", [[[]]]]`, 3),
    true,
    "an escaped backslash ends before the quote",
  );
  assert.equal(jsonDeeperThan(`["\\\\\\"[[", 1]`, 1), false);
  assert.equal(jsonDeeperThan(nested(30_000), 64), true);
  assert.equal(jsonDeeperThan(nested(64), 64), false);
  assert.equal(jsonDeeperThan(nested(65), 64), true);
});

Deno.test("parseClientFrame: 64 levels pass, 65 are refused with the limit and the id", () => {
  assert.ok(parseClientFrame(frame(64, "a")).ok);
  const r = parseClientFrame(frame(65, "b"));
  assert.deepEqual(r, {
    ok: false,
    error: "payload nests arrays/objects deeper than 64 levels",
    id: "b",
  });
  assert.ok(parseClientFrame(frame(3, "c"), { maxPayloadDepth: 3 }).ok);
  assert.equal(parseClientFrame(frame(4, "d"), { maxPayloadDepth: 3 }).ok, false);
});

Deno.test("socket: a 30,000-deep payload is bad_request and reaches no other member", async () => {
  await using ts = await startServer();
  const mallory = await connectAs(ts, "mallory");
  const bob = await connectAs(ts, "bob");
  await join(mallory, "r");
  await join(bob, "r");
  const deep = await mallory.request({ type: "ping", id: "warm" }).then(() => {
    mallory.ws.send(frame(30_000, "deep"));
    return mallory.next((m) => m.id === "deep");
  });
  assert.deepEqual(deep, {
    type: "error",
    code: "bad_request",
    message: "payload nests arrays/objects deeper than 64 levels",
    id: "deep",
  });
  mallory.ws.send(frame(65, "65"));
  assert.equal((await mallory.next((m) => m.id === "65")).code, "bad_request");
  mallory.ws.send(frame(64, "64"));
  assert.deepEqual(await mallory.next((m) => m.id === "64"), { type: "ack", id: "64" });
  const delivered = await bob.nextOf("message");
  assert.equal(JSON.stringify(delivered.payload), nested(64));
  await bob.request({ type: "ping", id: "sync" });
  assert.equal(bob.inbox.filter((m) => m.type === "message").length, 0, "only the 64-deep one");
  await mallory.close();
  await bob.close();
});

Deno.test("socket: MAX_PAYLOAD_DEPTH sets the limit", async () => {
  await using ts = await startServer({ MAX_PAYLOAD_DEPTH: "2" });
  const a = await connectAs(ts, "a");
  await join(a, "r");
  a.ws.send(frame(2, "ok"));
  assert.equal((await a.next((m) => m.id === "ok")).type, "ack");
  a.ws.send(frame(3, "no"));
  const r = await a.next((m) => m.id === "no");
  assert.equal(r.code, "bad_request");
  assert.match(String(r.message), /deeper than 2 levels/);
  await a.close();
});

Deno.test("publish API: deeper than the limit is 400 and reaches no one", async () => {
  await using ts = await startServer({ API_KEY });
  const bob = await connectAs(ts, "bob");
  await join(bob, "r");
  const post = async (depth: number) => {
    const res = await fetch(`${ts.httpUrl}/api/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: `{"room":"r","payload":${nested(depth)}}`,
    });
    return { status: res.status, body: await res.json() };
  };
  const deep = await post(30_000);
  assert.equal(deep.status, 400);
  assert.deepEqual(deep.body.error, {
    code: "bad_request",
    message: "payload: nests arrays/objects deeper than 64 levels",
  });
  assert.equal((await post(65)).status, 400);
  assert.equal((await post(64)).status, 202);
  const m = await bob.nextOf("message");
  assert.equal(JSON.stringify(m.payload), nested(64));
  await bob.request({ type: "ping", id: "sync" });
  assert.equal(bob.inbox.filter((x) => x.type === "message").length, 0, "only the 64-deep one");
  await bob.close();
});

/**
 * A Python consumer (Debian's python3-websockets; Python's `json.loads`
 * recurses): joins, prints each message it decodes, stops at `{"done":true}`.
 * websockets 10 has no sync client, hence asyncio.
 */
const PYTHON_CLIENT = `
import asyncio, json, sys, websockets

async def main():
    async with websockets.connect(sys.argv[1], max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        await ws.send(json.dumps({"type": "join", "room": "r", "id": "j"}))
        assert json.loads(await ws.recv())["type"] == "joined"
        print("JOINED", flush=True)
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            print(json.dumps(m.get("payload")), flush=True)
            if m.get("payload") == {"done": True}:
                return

asyncio.run(main())
`;

const PYTHON = "/usr/bin/python3";
const havePythonWebsockets = (() => {
  try {
    return new Deno.Command(PYTHON, { args: ["-c", "import websockets"] }).outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "a Python websockets client never receives the deep payload and does not crash",
  ignore: !havePythonWebsockets && Deno.env.get("CI") === undefined,
  async fn() {
    await using ts = await startServer();
    const python = new Deno.Command(PYTHON, {
      args: ["-c", PYTHON_CLIENT, `${ts.wsUrl}?token=${await token("py")}`],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines = python.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const stderr = new Response(python.stderr).text();
    let out = "";
    try {
      while (!out.includes("JOINED\n")) {
        const { value, done } = await lines.read();
        if (done) break;
        out += value;
      }
      if (!out.includes("JOINED\n")) assert.fail(`python did not join: ${out} ${await stderr}`);
      const mallory = await connectAs(ts, "mallory");
      await join(mallory, "r");
      mallory.ws.send(frame(30_000, "deep"));
      assert.equal((await mallory.next((m) => m.id === "deep")).code, "bad_request");
      for (const [payload, id] of [[{ text: "hi" }, "m1"], [{ done: true }, "m2"]] as const) {
        assert.equal(
          (await mallory.request({ type: "message", room: "r", payload, id })).type,
          "ack",
        );
      }
      for (;;) {
        const { value, done } = await lines.read();
        if (done) break;
        out += value;
      }
      const status = await python.status;
      const err = await stderr;
      assert.ok(status.success, `python failed: ${out} ${err.slice(-300)}`);
      assert.doesNotMatch(err, /RecursionError/);
      assert.deepEqual(out.trim().split("\n"), ["JOINED", '{"text": "hi"}', '{"done": true}']);
      await mallory.close();
    } finally {
      try {
        python.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await python.status;
      await lines.cancel().catch(() => {});
      await stderr;
    }
  },
});
