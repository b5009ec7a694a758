/**
 * `examples/node-backend` and `examples/python-backend` run as their READMEs
 * say, in front of a real server: each logs a user in with its own session,
 * mints the user's realtime token and publishes for them. The Node one
 * (`npm install` against a fresh build of `packages/server`, then
 * `node server.mjs`) is driven over HTTP with the TypeScript client; the
 * Python one (`/usr/bin/python3 app.py`, nothing to install) is driven in
 * Chromium through its page, whose client is the server's `/client.js`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../packages/client/src/client.ts";
import { loadConfig } from "../lib/config.ts";
import { staticRoutes } from "../lib/http/static_routes.ts";
import { buildPackage } from "../scripts/build_packages.ts";
import { eventually, SECRET, startServer, token } from "./_helpers.ts";
import { CHROMIUM, launchChromium } from "./_browser.ts";

const ROOT = new URL("../", import.meta.url);
const API_KEY = "backend-examples-api-key-long-enough-0000";
const ARTIFACTS = new URL("./artifacts/", import.meta.url);

/** A port nothing listens on right now, for a backend the server must name as an origin. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A realtime server serving `/client.js`, that admits pages from `origin`. */
async function realtimeServer(origin: string) {
  const env = { API_KEY, ALLOWED_ORIGINS: origin };
  const routes = await staticRoutes(loadConfig({ JWT_SECRET: SECRET, ...env }));
  return await startServer(env, { routes });
}

/** A backend process, ready once it printed its `listening on` line. */
async function startBackend(
  cmd: string,
  args: string[],
  cwd: string,
  env: Record<string, string>,
): Promise<{ url: string; stop(): Promise<void> }> {
  const child = new Deno.Command(cmd, {
    args,
    cwd,
    env: { PATH: Deno.env.get("PATH") ?? "", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let url: string | undefined;
  const deadline = Date.now() + 15_000;
  while (url === undefined && Date.now() < deadline) {
    const { value, done } = await lines.read();
    if (done) break;
    text += value;
    url = /listening on (http:\/\/\S+)/.exec(text)?.[1];
  }
  if (url === undefined) {
    child.kill();
    await child.status;
    assert.fail(`${cmd} did not start: ${text}`);
  }
  return {
    url,
    async stop() {
      child.kill("SIGTERM");
      await lines.cancel();
      await child.status;
    },
  };
}

Deno.test("examples/node-backend: login, token, publish through the server SDK, with npm and node", async () => {
  const dir = await Deno.makeTempDir({ prefix: "node_backend_" });
  const port = freePort();
  await using ts = await realtimeServer(`http://127.0.0.1:${port}`);
  const got: string[] = [];
  let rt: ReturnType<typeof connect> | undefined;
  let backend: Awaited<ReturnType<typeof startBackend>> | undefined;
  try {
    const sdk = `${dir}/server-sdk`;
    await Deno.mkdir(sdk);
    await Deno.copyFile(new URL("packages/server/package.json", ROOT), `${sdk}/package.json`);
    await buildPackage("server", `${sdk}/dist`);
    const app = `${dir}/app`;
    await Deno.mkdir(app);
    for (const file of ["server.mjs", "index.html"]) {
      await Deno.copyFile(new URL(`examples/node-backend/${file}`, ROOT), `${app}/${file}`);
    }
    const manifest = JSON.parse(
      await Deno.readTextFile(new URL("examples/node-backend/package.json", ROOT)),
    ) as { dependencies: Record<string, string> };
    manifest.dependencies["@realtime/server-sdk"] = `file:${sdk}`;
    await Deno.writeTextFile(`${app}/package.json`, JSON.stringify(manifest));
    const install = await new Deno.Command("npm", {
      args: ["install", "--install-links", "--prefer-offline", "--no-audit", "--no-fund"],
      cwd: app,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(install.code, 0, new TextDecoder().decode(install.stderr));

    // What `npm start` runs, without npm in between (so that SIGTERM reaches node).
    backend = await startBackend("node", ["server.mjs"], app, {
      HOME: Deno.env.get("HOME") ?? "/root",
      PORT: String(port),
      REALTIME_URL: ts.httpUrl,
      JWT_SECRET: SECRET,
      API_KEY,
    });
    const base = backend.url;
    assert.equal(await (await fetch(`${base}/token`)).text(), "log in first");
    const refused = await fetch(`${base}/login`, {
      method: "POST",
      body: JSON.stringify({ user: "alice", password: "nope" }),
    });
    await refused.body?.cancel();
    assert.equal(refused.status, 401);
    const login = await fetch(`${base}/login`, {
      method: "POST",
      body: JSON.stringify({ user: "alice", password: "alice-pw" }),
    });
    await login.body?.cancel();
    assert.equal(login.status, 204);
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0]!;
    const getToken = async () =>
      await (await fetch(`${base}/token`, { headers: { cookie } })).text();
    rt = connect(ts.wsUrl, { token: getToken });
    await rt.join(
      "chat:lobby",
      (payload, m) => got.push(`${m.room} ${(payload as { text: string }).text}`),
    );
    await rt.join(
      "user:alice",
      (payload, m) => got.push(`${m.room} ${(payload as { text: string }).text}`),
    );
    assert.equal(rt.userId, "alice");
    const announce = await fetch(`${base}/announce`, { method: "POST", headers: { cookie } });
    await announce.body?.cancel();
    assert.equal(announce.status, 204);
    await eventually(() => got.length === 2, 5000, "both messages");
    assert.deepEqual(got, ["chat:lobby Alice pressed the button", "user:alice only you see this"]);
  } finally {
    await rt?.close();
    await backend?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "examples/python-backend: /usr/bin/python3 mints and publishes to a browser page",
  ignore: CHROMIUM === undefined,
  async fn() {
    const port = freePort();
    await using ts = await realtimeServer(`http://127.0.0.1:${port}`);
    const backend = await startBackend(
      "/usr/bin/python3",
      ["app.py"],
      new URL("examples/python-backend/", ROOT).pathname,
      { PORT: String(port), REALTIME_URL: ts.httpUrl, JWT_SECRET: SECRET, API_KEY },
    );
    const bob = connect(ts.wsUrl, { token: await token("bob", { rooms: ["chat:*"] }) });
    try {
      const bobGot: unknown[] = [];
      await bob.join("chat:lobby", (payload) => bobGot.push(payload));
      await using browser = await launchChromium({
        profilePrefix: "python_backend_chromium_",
        viewport: { width: 900, height: 600 },
      });
      const page = await browser.newPage();
      await page.goto(backend.url);
      await page.click("#login button[type=submit]");
      await page.waitForSelector("#state.open");
      assert.equal(await page.locator("#me").innerText(), "as alice");
      await page.waitForSelector("#announce:not([disabled])");
      await page.click("#announce");
      const items = () => page.locator("#messages li").allInnerTexts();
      await eventually(async () => (await items()).length === 2, 5000, "the page got both");
      assert.deepEqual((await items()).sort(), [
        "chat:lobby server: Alice pressed the button",
        "user:alice server: only you see this",
      ]);
      await eventually(() => bobGot.length === 1, 3000, "another client got the lobby message");
      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: new URL("python_backend.png", ARTIFACTS).pathname });
      assert.deepEqual(browser.problems, []);
    } finally {
      await bob.close();
      await backend.stop();
    }
  },
});
