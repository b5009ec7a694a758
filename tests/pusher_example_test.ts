/**
 * The README's one-minute `pusher-js` example (`examples/pusher/quickstart.ts`),
 * run as users run it, against a real server: two of them, Alice then Bob.
 *
 * @module
 */
import assert from "node:assert/strict";
import { eventually } from "./_helpers.ts";
import { APP, startPusherServer } from "./_pusher.ts";

const EXAMPLE = new URL("../examples/pusher/quickstart.ts", import.meta.url).pathname;

function runExample(port: number, user: string, exitAfterMs: number): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", EXAMPLE],
    env: {
      HOST: "127.0.0.1",
      PORT: String(port),
      APP_ID: APP.id,
      APP_KEY: APP.key,
      APP_SECRET: APP.secret,
      USER_NAME: user,
      EXIT_AFTER_MS: String(exitAfterMs),
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

Deno.test("examples/pusher/quickstart.ts: Alice joins, sees Bob join; Bob sees two members", async () => {
  await using ts = await startPusherServer();
  const alice = runExample(ts.port, "Alice", 20_000);
  let aliceOut = "";
  const reading = alice.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (aliceOut += chunk) }),
  );
  await eventually(() => aliceOut.includes("Alice is in"), 20_000, "Alice in the lobby");
  const bob = await runExample(ts.port, "Bob", 500).output();
  const bobOut = new TextDecoder().decode(bob.stdout);
  assert.equal(bob.code, 0, new TextDecoder().decode(bob.stderr));
  assert.match(bobOut, /Bob is in presence-lobby with 2 member\(s\)/);
  await eventually(() => aliceOut.includes("Bob joined"), 5000, "Alice sees Bob join");
  alice.kill("SIGTERM");
  await reading;
  await alice.stderr.cancel();
  await alice.status;
  assert.match(aliceOut, /Alice is in presence-lobby with 1 member\(s\)/);
  assert.match(aliceOut, /Bob joined/);
});
