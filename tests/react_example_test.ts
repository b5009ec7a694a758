/**
 * `examples/react` as its README runs it: Vite builds it against the
 * workspace packages (`packages/client`, `packages/react`, freshly built,
 * linked with `file:`; npm brings React, Vite and TypeScript from its cache
 * or the registry), `tsc --strict` checks it first, and Debian's Chromium
 * renders it under StrictMode against a real server: the room's past and
 * live messages, who is online, a second component on the same room, a
 * server restart survived, and unmounting leaving the room (StrictMode's
 * double mount left no subscription behind). Screenshots go to
 * tests/artifacts/ (ignored by git).
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../packages/client/src/client.ts";
import { buildPackage, type PackageName } from "../scripts/build_packages.ts";
import { eventually, startServer, type TestServer, token } from "./_helpers.ts";
import { CHROMIUM, launchChromium } from "./_browser.ts";

const ROOT = new URL("../", import.meta.url);
const ARTIFACTS = new URL("./artifacts/", import.meta.url);
const ROOM = "chat:react";

async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  const { code, stdout, stderr } = await new Deno.Command(cmd, {
    args,
    cwd,
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/root" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, `${cmd} ${args.join(" ")} failed (exit ${code}):\n${text}`);
}

/** A package as `file:` links see it: its package.json and a fresh dist/. */
async function stage(name: PackageName, dir: string): Promise<string> {
  const at = `${dir}/${name}`;
  await Deno.mkdir(at, { recursive: true });
  await Deno.copyFile(new URL(`packages/${name}/package.json`, ROOT), `${at}/package.json`);
  await buildPackage(name, `${at}/dist`);
  return at;
}

/** Copies the example (sources only) and points its workspace links at the staged packages. */
async function copyExample(dir: string, links: Record<string, string>): Promise<string> {
  const app = `${dir}/app`;
  const from = new URL("examples/react/", ROOT);
  await Deno.mkdir(`${app}/src`, { recursive: true });
  for (
    const file of ["index.html", "tsconfig.json", "vite.config.js", "src/main.tsx", "src/App.tsx"]
  ) {
    await Deno.copyFile(new URL(file, from), `${app}/${file}`);
  }
  const manifest = JSON.parse(await Deno.readTextFile(new URL("package.json", from))) as {
    dependencies: Record<string, string>;
  };
  for (const [name, path] of Object.entries(links)) manifest.dependencies[name] = `file:${path}`;
  await Deno.writeTextFile(`${app}/package.json`, JSON.stringify(manifest, null, 2));
  return app;
}

/** Serves a built site (index.html for `/`). */
function serveStatic(root: string): Deno.HttpServer<Deno.NetAddr> {
  const types: Record<string, string> = {
    html: "text/html; charset=utf-8",
    js: "text/javascript",
    css: "text/css",
  };
  return Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    const file = path === "/" ? "/index.html" : path;
    if (file.includes("..")) return new Response("no", { status: 400 });
    try {
      const body = await Deno.readFile(`${root}${file}`);
      const ext = file.split(".").pop() ?? "";
      return new Response(body, {
        headers: { "content-type": types[ext] ?? "application/octet-stream" },
      });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

Deno.test({
  name: "examples/react: Vite build of the hooks, rendered in Chromium, survives a restart",
  ignore: CHROMIUM === undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "react_example_" });
    let ts: TestServer | undefined;
    let site: Deno.HttpServer<Deno.NetAddr> | undefined;
    let bob: ReturnType<typeof connect> | undefined;
    try {
      const client = await stage("client", `${dir}/packages`);
      const react = await stage("react", `${dir}/packages`);
      const app = await copyExample(dir, { "@realtime/client": client, "@realtime/react": react });
      await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], app);
      await run("npm", ["run", "build"], app);
      site = serveStatic(`${app}/dist`);
      const origin = `http://127.0.0.1:${site.addr.port}`;
      // A browser page on another origin: the server must list it.
      const env = { HISTORY_SIZE: "20", PRESENCE: "true", ALLOWED_ORIGINS: origin };
      ts = await startServer(env);
      const port = ts.port;
      bob = connect(ts.wsUrl, {
        token: await token("bob", { rooms: ["chat:*"] }),
        reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
      });

      await ts.server.publish(ROOM, { text: "before the page" });
      await ts.server.publish(ROOM, { text: "also before" });
      await bob.join(ROOM, () => {});
      const query = new URLSearchParams({
        server: ts.wsUrl,
        room: ROOM,
        token: await token("reacter", { rooms: ["chat:*"] }),
      });
      await using browser = await launchChromium({
        profilePrefix: "react_example_chromium_",
        viewport: { width: 1000, height: 700 },
      });
      const page = await browser.newPage();
      await page.goto(`${origin}/?${query}`);
      await page.waitForSelector('#state[data-state="open"]');
      const texts = () => page.locator("#messages li").allInnerTexts();
      await eventually(async () => (await texts()).length === 2, 5000, "the room's past");
      assert.deepEqual(await texts(), ["server: before the page", "server: also before"]);
      await eventually(
        async () =>
          (await page.locator("#online li").allInnerTexts()).sort().join() === "bob,reacter",
        5000,
        "who is online",
      );

      await ts.server.publish(ROOM, { text: "live" });
      await page.fill("#text", "typed in the page");
      await page.click("button[type=submit]");
      await eventually(async () => (await texts()).length === 4, 5000, "live messages");
      assert.deepEqual((await texts()).slice(2), ["server: live", "reacter: typed in the page"]);
      // StrictMode mounted every hook twice: each message still shows once, in both components.
      assert.equal(await page.locator("#count").innerText(), "2");
      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: new URL("react_example.png", ARTIFACTS).pathname });

      // A restart: the page reconnects, rejoins and shows what comes next.
      await ts.close();
      await page.waitForSelector('#state[data-state="reconnecting"]');
      ts = await startServer({ ...env, PORT: String(port) });
      await page.waitForSelector('#state[data-state="open"]', { timeout: 10_000 });
      const restarted = ts;
      await eventually(() => restarted.server.stats().rooms === 1, 5000, "rejoined");
      await restarted.server.publish(ROOM, { text: "after the restart" });
      await eventually(
        async () => (await texts()).at(-1) === "server: after the restart",
        5000,
        "delivery after the restart",
      );
      await eventually(
        async () =>
          (await page.locator("#online li").allInnerTexts()).sort().join() === "bob,reacter",
        5000,
        "presence after the restart",
      );
      await page.screenshot({ path: new URL("react_example_restarted.png", ARTIFACTS).pathname });

      // Unmounting every hook leaves the room: no subscription was left behind.
      await page.click("#toggle");
      await eventually(
        () => bob!.presence(ROOM)?.members.map((m) => m.userId).join() === "bob",
        5000,
        "the page left the room",
      );
      assert.deepEqual(browser.problems, []);
    } finally {
      await bob?.close();
      await site?.shutdown();
      await ts?.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
