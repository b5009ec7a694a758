/**
 * The demo page's rough edges (issue 21, 5 and 9) and its private room
 * decided by the join hook (issue 18), in headless Chromium against a real
 * server: a token that does not grant `lobby` says what it does grant, a
 * private room is admitted or refused by `examples/hooks/backend.ts` with
 * the backend's reason on the page, the button and composer follow the
 * connection, the Online list keeps its order, and a restart leaves no
 * error entries behind. Screenshots go to tests/artifacts/.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { MemoryAuditSink } from "../lib/audit.ts";
import { loadConfig } from "../lib/config.ts";
import { mintToken } from "../lib/dev.ts";
import { createServer, type RealtimeServer } from "../lib/server.ts";
import { staticRoutes } from "../lib/http/static_routes.ts";
import { connectAs, join, SECRET, SECRET_BYTES, sleep, startServer } from "./_helpers.ts";
import { CHROMIUM, type Chromium, launchChromium } from "./_browser.ts";
import { freePort, spawnServer } from "./_process.ts";

const ARTIFACTS = new URL("./artifacts/", import.meta.url);
const HOOK_SECRET = "demo-hook-secret-long-enough-0123456789";
const browserTest = { ignore: CHROMIUM === undefined } as const;

interface Demo extends AsyncDisposable {
  readonly server: RealtimeServer;
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

async function startDemo(
  env: Record<string, string>,
  options: { port?: number; devSecret?: Uint8Array } = {},
): Promise<Demo> {
  const { port = 0, devSecret } = options;
  const config = loadConfig({ PORT: String(port), HOSTNAME: "127.0.0.1", BUS: "memory", ...env });
  const server = await createServer({
    config,
    audit: new MemoryAuditSink(),
    routes: await staticRoutes(config),
    ...(devSecret === undefined ? {} : { devSecret }),
  });
  const http = Deno.serve({ port, hostname: "127.0.0.1", onListen() {} }, server.handler);
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      await server.shutdown({ graceMs: 2000 });
      await http.shutdown();
      await server.close();
    })();
  return {
    server,
    port: http.addr.port,
    url: `http://127.0.0.1:${http.addr.port}/`,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Opens the demo, pastes `token` (when given) and connects. */
async function openWith(chromium: Chromium, url: string, token?: string): Promise<Page> {
  const page = await chromium.newPage();
  await page.goto(url);
  if (token !== undefined) {
    await page.waitForSelector('#status[data-state="closed"]');
    await page.fill("#token", token);
    await page.click("#connect");
  }
  await page.waitForSelector('#status[data-state="open"]');
  return page;
}

const joinedSelector = (room: string) => `#rooms li[data-room="${room}"][data-joined="true"]`;

Deno.test({
  ...browserTest,
  name:
    "demo: a private room the join hook admits for alice and refuses for carol, with its reason",
  async fn() {
    const port = freePort();
    await using backend = await spawnServer(
      ["run", "--allow-net", "--allow-env", "examples/hooks/backend.ts"],
      { port, env: { WEBHOOK_SECRET: HOOK_SECRET, PORT: String(port) } },
    );
    await using demo = await startDemo({
      JWT_SECRET: SECRET,
      DEMO: "1",
      WEBHOOK_SECRET: HOOK_SECRET,
      HOOK_JOIN_URL: `${backend.httpUrl}/join`,
    });
    await using chromium = await launchChromium({
      profilePrefix: "demo_edges_",
      viewport: { width: 1280, height: 800 },
    });
    // The README's tokens: lobby and chat rooms; group rooms are the backend's to grant.
    const mint = (sub: string) => mintToken(SECRET_BYTES, { sub, rooms: ["lobby", "chat:*"] });
    const alice = await openWith(chromium, demo.url, await mint("alice"));
    await alice.waitForSelector(joinedSelector("lobby"));
    assert.equal(await alice.locator("#errors li[data-code]").count(), 0, "no_dev_token is gone");
    await alice.click("#private-room");
    await alice.waitForSelector(joinedSelector("group:founders"));
    assert.equal(await alice.textContent("#room-title"), "#group:founders");

    const carol = await openWith(chromium, demo.url, await mint("carol"));
    await carol.waitForSelector(joinedSelector("lobby"));
    await carol.click("#private-room");
    await carol.waitForSelector("#banner[data-kind=error]");
    assert.equal(
      await carol.textContent("#banner"),
      "You may not join #group:founders: not a member of this group. Your token grants " +
        "lobby, chat:* — try #chat:general.",
    );
    assert.equal(await carol.locator('#rooms li[data-room="group:founders"]').count(), 0);
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    await carol.screenshot({ path: new URL("demo-private-denied.png", ARTIFACTS).pathname });
    await alice.screenshot({ path: new URL("demo-private-admitted.png", ARTIFACTS).pathname });
    assert.deepEqual(chromium.problems, []);
  },
});

Deno.test({
  ...browserTest,
  name:
    "demo: the README's token (chat:*, user:{sub}) is told why lobby is refused and what to join",
  async fn() {
    await using demo = await startDemo({ JWT_SECRET: SECRET, DEMO: "1" });
    await using chromium = await launchChromium({
      profilePrefix: "demo_edges_",
      viewport: { width: 1280, height: 800 },
    });
    const readme = await mintToken(SECRET_BYTES, { sub: "alice", rooms: ["chat:*", "user:{sub}"] });
    const page = await openWith(chromium, demo.url, readme);
    await page.waitForSelector("#banner[data-kind=error]");
    assert.equal(
      await page.textContent("#banner"),
      "You may not join #lobby: you may not join this room. Your token grants chat:*, " +
        "user:alice — try #chat:general.",
    );
    // The name is the token's, the room field suggests a room it grants, the button says what it does.
    assert.equal(await page.inputValue("#name"), "alice");
    assert.equal(await page.inputValue("#room-input"), "chat:general");
    assert.equal(await page.textContent("#connect"), "Reconnect");
    assert.equal(await page.isDisabled("#message"), true, "no room, no composer");
    await page.click("#join");
    await page.waitForSelector(joinedSelector("chat:general"));
    assert.equal(await page.isDisabled("#message"), false);
    assert.deepEqual(chromium.problems, []);
  },
});

Deno.test({
  ...browserTest,
  name: "demo: after an auth failure the room is not 'joining…' and the composer is off",
  async fn() {
    await using demo = await startDemo({ JWT_SECRET: SECRET, DEMO: "1" });
    await using chromium = await launchChromium({
      profilePrefix: "demo_edges_",
      viewport: { width: 1280, height: 800 },
    });
    const page = await chromium.newPage();
    await page.goto(demo.url);
    await page.waitForSelector('#status[data-state="closed"]');
    const forged = await mintToken(crypto.getRandomValues(new Uint8Array(32)), { sub: "eve" });
    await page.fill("#token", forged);
    await page.click("#connect");
    await page.waitForSelector('#banner:text-is("Authentication failed — check your token")');
    assert.equal(await page.textContent("#room-note"), "not connected — press Connect");
    assert.equal(await page.isDisabled("#message"), true);
    assert.equal(await page.textContent("#connect"), "Connect");
    assert.deepEqual(chromium.problems, []);
  },
});

Deno.test({
  ...browserTest,
  name: "demo: distinct default names, a stable Online list, no errors left after a restart",
  async fn() {
    const devSecret = crypto.getRandomValues(new Uint8Array(32));
    const first = await startDemo({ PRESENCE: "1" }, { devSecret });
    let second: Demo | undefined;
    try {
      await using chromium = await launchChromium({
        profilePrefix: "demo_edges_",
        viewport: { width: 1280, height: 800 },
      });
      const pages: Page[] = [];
      for (let i = 0; i < 3; i++) pages.push(await openWith(chromium, first.url));
      const names = await Promise.all(pages.map((p) => p.inputValue("#name")));
      for (const name of names) assert.match(name, /^[a-z]+-\d\d$/, "not guest-xxxx");
      const page = pages[0]!;
      await page.waitForSelector(joinedSelector("lobby"));
      await page.waitForSelector("#online li[data-user]:nth-child(3)");
      const order = () => page.locator("#online li .who").allTextContents();
      const before = await order();
      assert.equal(before[0], `${names[0]} (you)`, "you first");
      assert.deepEqual(before.slice(1), [...before.slice(1)].sort(), "then by name");

      await first.stop();
      await page.waitForSelector('#status[data-state="reconnecting"]');
      assert.equal(await page.isDisabled("#message"), true, "no sending while disconnected");
      second = await startDemo({ PRESENCE: "1" }, { port: first.port, devSecret });
      for (const p of pages) {
        await p.waitForSelector(`#status[data-instance="${second.server.instanceId}"]`, {
          timeout: 20_000,
        });
      }
      await page.waitForSelector(joinedSelector("lobby"));
      await page.waitForSelector("#online li[data-user]:nth-child(3)");
      assert.deepEqual(await order(), before, "the same order after the reconnect");
      assert.equal(await page.locator("#errors li[data-code]").count(), 0, "no stale errors");
      assert.equal(await page.isDisabled("#message"), false);
      // At 390 px: the member count shows, and no name (yours included) is cut off.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.waitForSelector("#online-title:visible");
      assert.equal(await page.textContent("#online-title"), "Online · 3");
      const clipped = await page.evaluate(`[...document.querySelectorAll("#online li")]
        .filter((li) => li.getBoundingClientRect().right > document.documentElement.clientWidth ||
          [...li.querySelectorAll(".who")].some((who) => who.scrollWidth > who.clientWidth))
        .map((li) => li.textContent)`) as string[];
      assert.deepEqual(clipped, []);
      assert.deepEqual(chromium.problems, []);
    } finally {
      await first.stop();
      await second?.stop();
    }
  },
});

Deno.test({
  ...browserTest,
  name:
    "admin: the bus once, a short instance id, readable figure names, no holes (1280 and 390 px)",
  async fn() {
    const API_KEY = "demo-edges-admin-key-0123456789abcdef";
    const env = { API_KEY, PRESENCE: "1", HISTORY_SIZE: "10" };
    const config = loadConfig({ JWT_SECRET: SECRET, ...env });
    await using ts = await startServer(env, { routes: await staticRoutes(config) });
    await using chromium = await launchChromium({
      profilePrefix: "demo_edges_admin_",
      viewport: { width: 1280, height: 900 },
    });
    const clients = [await connectAs(ts, "alice"), await connectAs(ts, "bob")];
    try {
      for (const c of clients) await join(c, "lobby");
      const page = await chromium.newPage();
      await page.goto(`${ts.httpUrl}/admin`);
      await page.fill("#key", API_KEY);
      await page.click("#login-form button[type=submit]");
      await page.waitForSelector("#dashboard:not([hidden])");
      await page.waitForSelector('#tile-connections output[data-value="2"]');
      for (let i = 0; i < 6; i++) {
        clients[0]!.send({ type: "message", room: "lobby", payload: { text: `hi ${i}` } });
        await sleep(400);
      }
      await page.waitForSelector('#chart-messages:not([data-points="0"])');
      // The bus: one tile (with its gaps and drops), not a tile per figure, a table and the header.
      assert.equal(await page.textContent("#tile-bus output"), "ok · memory");
      assert.equal(await page.textContent("#tile-bus .note"), "0 gaps · 0 dropped");
      assert.equal(await page.locator("#tile-bus-gaps, #tile-bus-dropped, #table-bus").count(), 0);
      const header = await page.textContent("#instance") ?? "";
      assert.equal(header.includes(ts.server.instanceId), false, "the short id only");
      assert.match(header, /^instance [0-9a-f]{8} · up /);
      assert.doesNotMatch(header, /bus/);
      // Figure names as words: no camelCase under "More figures".
      const names = await page.locator("#more h3, #more td:first-child").allTextContents();
      assert.ok(names.includes("store status"), names.join(", "));
      for (const name of names) assert.doesNotMatch(name, /[a-z][A-Z]/);
      // No holes: the tiles' last row and the charts fill the width.
      const rows = await page.evaluate(`(() => {
        const edge = (sel) => [...document.querySelectorAll(sel)].map((e) => e.getBoundingClientRect());
        const right = (rects) => Math.max(...rects.map((r) => r.right));
        const last = (rects) => rects.filter((r) => r.top === Math.max(...rects.map((x) => x.top)));
        const tiles = edge("#tiles > .tile"), charts = edge("#charts > figure");
        return [right(last(tiles)) - right(tiles), right(last(charts)) - right(charts)];
      })()`) as number[];
      for (const gap of rows) assert.ok(Math.abs(gap) < 2, `a hole of ${gap} px`);
      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: new URL("admin-1280.png", ARTIFACTS).pathname });
      await page.setViewportSize({ width: 390, height: 844 });
      await sleep(300);
      const wrapped = await page.evaluate(
        `document.querySelector("#instance").getBoundingClientRect().height`,
      ) as number;
      assert.ok(wrapped < 40, `the instance line is ${wrapped} px high`);
      await page.screenshot({ path: new URL("admin-390.png", ARTIFACTS).pathname });
      assert.deepEqual(chromium.problems, []);
    } finally {
      for (const c of clients) await c.close();
    }
  },
});
