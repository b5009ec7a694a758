/**
 * Start-up as a newcomer meets it, through the real `deno task` commands:
 * a `KV_PATH` this process may not write and a port another process holds
 * each stop start-up with one line naming the variable (no banner, no stack),
 * and the console says where the admin page is when it is served.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, SECRET, startServer } from "./_helpers.ts";
import { freePort } from "./_process.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const decoder = new TextDecoder();

/** Runs `deno task <task>` with `env` until it exits, or until `untilLine` shows (then SIGTERM). */
async function runTask(
  task: string,
  env: Record<string, string>,
  untilLine?: RegExp,
): Promise<{ code: number; output: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", task],
    cwd: ROOT,
    env: { LOG_LEVEL: "error", HOSTNAME: "127.0.0.1", NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) output += decoder.decode(chunk);
  };
  const reading = Promise.all([read(child.stdout), read(child.stderr)]);
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  if (untilLine !== undefined) {
    while (!untilLine.test(output)) {
      const done = await Promise.race([
        child.status.then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), 50)),
      ]);
      if (done) break;
    }
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
  }
  const { code } = await child.status;
  clearTimeout(timer);
  await reading;
  return { code, output };
}

Deno.test("edge 3: a KV_PATH outside ./data stops start-up with one line naming KV_PATH", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const extra of [{}, { HISTORY_SIZE: "10" }]) {
      const { code, output } = await runTask("start", {
        JWT_SECRET: SECRET,
        PORT: String(freePort()),
        STORE: "kv",
        KV_PATH: `${dir}/realtime.kv`,
        ...extra,
      });
      assert.equal(code, 1, output);
      const lines = output.trim().split("\n");
      assert.equal(lines.length, 1, output);
      assert.match(lines[0]!, /^config error: KV_PATH: .*may not write .*\.\/data/);
      assert.doesNotMatch(output, /--allow-write flag|Requires write access/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("edge 4: a port in use is one line, no dev banner, no stack (start and start:parallel)", async () => {
  const taken = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = String(taken.addr.port);
  try {
    // Dev mode: the banner (a token for another process) must not show.
    const dev = await runTask("start", { PORT: port });
    assert.equal(dev.code, 1, dev.output);
    assert.doesNotMatch(dev.output, /DEV MODE|Token:/);
    assert.deepEqual(dev.output.trim().split("\n"), [
      `config error: PORT: ${port} is already in use on 127.0.0.1 by another process ` +
      `(is another server running?): stop it, or set PORT to a free port`,
    ]);
    for (const httpServer of ["node", "deno"]) {
      const parallel = await runTask("start:parallel", {
        JWT_SECRET: SECRET,
        PORT: port,
        HOSTNAME: "0.0.0.0",
        HTTP_SERVER: httpServer,
        DENO_JOBS: "2",
      });
      assert.equal(parallel.code, 1, parallel.output);
      assert.doesNotMatch(parallel.output, /Uncaught|AddrInUse|at /);
      assert.equal(parallel.output.trim().split("\n").length, 1, parallel.output);
      assert.match(parallel.output, /^config error: PORT: \d+ is already in use/);
    }
  } finally {
    taken.close();
  }
});

Deno.test("edge 8: the start-up lines name the admin page when API_KEY is set", async () => {
  const { output } = await runTask(
    "start",
    { JWT_SECRET: SECRET, PORT: "0", API_KEY: "startup-edges-api-key-0123456789abcdef" },
    /Admin:.*\n/,
  );
  assert.match(output, /Admin:\s+http:\/\/localhost:\d+\/admin\s+\(sign in with API_KEY\)/);
  const without = await runTask("start", { JWT_SECRET: SECRET, PORT: "0" }, /Listening on .*\n/);
  assert.doesNotMatch(without.output, /Admin:/);
});

Deno.test("edge 8: deno task dev ends on SIGTERM (the watcher does not linger)", async () => {
  const started = performance.now();
  const { code, output } = await runTask(
    "dev",
    { JWT_SECRET: SECRET, PORT: "0" },
    /Listening on .*\n/,
  );
  assert.match(output, /Listening on/);
  // SIGTERM ends it (143), well before runTask's SIGKILL fallback at 20 s (137).
  assert.equal(code, 143, output);
  assert.ok(performance.now() - started < 15_000);
});

Deno.test("edge 8: deno task token --info sets the presence info the server accepts", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "task",
      "-q",
      "token",
      "--sub",
      "alice",
      "--rooms",
      "lobby",
      "--info",
      '{"name":"Alice"}',
    ],
    cwd: ROOT,
    env: { JWT_SECRET: SECRET },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, decoder.decode(out.stderr));
  const token = decoder.decode(out.stdout).trim();
  const claims = JSON.parse(atob(token.split(".")[1]!.replaceAll("-", "+").replaceAll("_", "/")));
  assert.deepEqual(claims.info, { name: "Alice" });
  await using ts = await startServer({ PRESENCE: "1" });
  const { client } = await connect(`${ts.wsUrl}?token=${token}`);
  const joined = await client.request({ type: "join", room: "lobby", id: "j" });
  assert.equal(joined.type, "joined");
  const presence = await client.request({ type: "presence", room: "lobby", id: "p" });
  assert.match(JSON.stringify(presence), /"name":"Alice"/);
  await client.close();
  const bad = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "token", "--sub", "alice", "--info", "[1]"],
    cwd: ROOT,
    env: { JWT_SECRET: SECRET },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(bad.code, 2);
  assert.match(decoder.decode(bad.stderr), /^token: --info: info must be a JSON object/);
});
