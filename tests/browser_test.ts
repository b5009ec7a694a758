/**
 * The demo page and `/client.js` in a real browser (Debian's Chromium driven
 * by playwright-core): chatting between two pages, a refused token, a server
 * restart under a connected page, and screenshots for a human to look at
 * (written to tests/artifacts/, which git ignores).
 *
 * Each test runs its own in-process server in dev mode (no JWT key, so
 * `/dev/token` works) with DEMO=1, and its own browser with a throw-away
 * profile. Without Chromium the tests are ignored, except under CI, where the
 * "Chromium is installed" test fails instead.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { BrowserContext, Page } from "playwright-core";
import { MemoryAuditSink } from "../lib/audit.ts";
import { loadConfig } from "../lib/config.ts";
import { mintToken } from "../lib/dev.ts";
import type { RealtimeServer } from "../lib/server.ts";
import { createServer } from "../lib/server.ts";
import { staticRoutes } from "../lib/http/static_routes.ts";
import { eventually, SECRET, token } from "./_helpers.ts";
import { CHROMIUM, launchChromium } from "./_browser.ts";

const ARTIFACTS = new URL("./artifacts/", import.meta.url);
const CI = (Deno.env.get("CI") ?? "") !== "";
const HOW_TO_INSTALL = "install it with `apt-get install chromium` (Debian) " +
  "or put a `chromium` binary on PATH";

if (CHROMIUM === undefined && !CI) {
  console.warn(
    `browser_test.ts: Chromium not found at /usr/bin/chromium or on PATH: browser tests skipped; ${HOW_TO_INSTALL} to run them.`,
  );
}

/** Options shared by the browser tests. */
const browserTest = { ignore: CHROMIUM === undefined } as const;

Deno.test({
  name: "Chromium is installed for the browser tests",
  ignore: CHROMIUM === undefined && !CI,
  fn() {
    assert.ok(
      CHROMIUM !== undefined,
      `CI is set but Chromium is missing (looked at /usr/bin/chromium and PATH): ${HOW_TO_INSTALL}`,
    );
  },
});

// ---- fixtures ----

/** A demo server in dev mode on 127.0.0.1 (`/dev/token` wants a loopback Host). */
interface DemoServer extends AsyncDisposable {
  readonly server: RealtimeServer;
  readonly audit: MemoryAuditSink;
  readonly port: number;
  /** `http://127.0.0.1:<port>/` */
  readonly url: string;
  /** Closes every socket (1001), stops listening, releases the server. Idempotent. */
  stop(): Promise<void>;
}

async function startDemo(
  options: { port?: number; devSecret?: Uint8Array; env?: Record<string, string> } = {},
): Promise<DemoServer> {
  const { port = 0, devSecret, env = {} } = options;
  // Without a JWT key in `env`: dev mode, which turns on the demo and /dev/token.
  const config = loadConfig({ PORT: String(port), HOSTNAME: "127.0.0.1", BUS: "memory", ...env });
  assert.ok(config.server.demo);
  const audit = new MemoryAuditSink();
  const server = await createServer({
    config,
    audit,
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
    audit,
    port: http.addr.port,
    url: `http://127.0.0.1:${http.addr.port}/`,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** A Chromium with a fresh profile in a temp dir, removed on dispose. */
interface Browser extends AsyncDisposable {
  readonly context: BrowserContext;
  /** Opens `url` and (unless `connected` is false) waits until the page's client is connected. */
  open(url: string, options?: { name?: string; connected?: boolean }): Promise<Page>;
  /** What the pages reported: uncaught exceptions and CSP violations. */
  readonly problems: string[];
}

async function launchBrowser(): Promise<Browser> {
  const chromium = await launchChromium({
    profilePrefix: "browser_test_",
    viewport: { width: 1280, height: 800 },
  });
  return {
    context: chromium.context,
    problems: chromium.problems,
    async open(url, options = {}) {
      const page = await chromium.newPage();
      await page.goto(url);
      if (options.connected === false) return page;
      await waitForState(page, "open");
      if (options.name !== undefined) {
        await page.fill("#name", options.name);
        await page.click("#connect");
        await page.waitForSelector(`#whoami:text-is("Signed in as ${options.name}")`);
        await waitForState(page, "open");
      }
      return page;
    },
    [Symbol.asyncDispose]: () => chromium[Symbol.asyncDispose](),
  };
}

function waitForState(page: Page, state: string): Promise<unknown> {
  return page.waitForSelector(`#status[data-state="${state}"]`);
}

async function joined(page: Page, room: string): Promise<void> {
  await page.waitForSelector(`#rooms li[data-room="${room}"][data-joined="true"]`);
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill("#message", text);
  await page.press("#message", "Enter");
}

function messageTexts(page: Page): Promise<string[]> {
  return page.locator("#log .msg .text").allTextContents();
}

// ---- tests ----

Deno.test({
  ...browserTest,
  name: "browser: two pages join a room and see each other's messages",
  async fn() {
    await using demo = await startDemo();
    await using browser = await launchBrowser();
    const alice = await browser.open(demo.url, { name: "alice" });
    const bob = await browser.open(demo.url, { name: "bob" });
    await joined(alice, "lobby");
    await joined(bob, "lobby");
    // Dev mode tracks presence: each page lists both users online in the room.
    for (const page of [alice, bob]) {
      await page.waitForSelector('#online li[data-user="alice"]');
      await page.waitForSelector('#online li[data-user="bob"]');
      assert.equal(await page.locator("#online-title").textContent(), "Online · 2");
    }

    await say(alice, "hello from alice");
    await bob.waitForSelector('#log .msg .text:text-is("hello from alice")');
    assert.equal(await bob.locator("#log .msg").last().locator(".from").textContent(), "alice");

    await say(bob, "hi alice");
    await alice.waitForSelector('#log .msg .text:text-is("hi alice")');
    assert.deepEqual(await messageTexts(alice), ["hello from alice", "hi alice"]);
    // Alice's own message comes back to her, marked as hers.
    assert.equal(await alice.locator("#log .msg.mine .text").textContent(), "hello from alice");

    // Markup in a message stays text.
    const markup = "<img src=x onerror=\"document.title='pwned'\"><b>bold</b>";
    await say(bob, markup);
    await alice.waitForSelector("#log .msg:last-child .text");
    await eventually(async () => (await messageTexts(alice)).includes(markup), 5000, "markup");
    assert.equal(await alice.locator("#log img, #log b").count(), 0);
    assert.notEqual(await alice.title(), "pwned");

    // A second room keeps its own log.
    await alice.fill("#room-input", "random");
    await alice.click("#join");
    await joined(alice, "random");
    assert.deepEqual(await messageTexts(alice), []);
    await alice.click('#rooms li[data-room="lobby"] .room-btn');
    assert.equal((await messageTexts(alice)).length, 3);

    // Bob closes his tab: alice sees him go.
    await bob.close();
    await alice.waitForSelector('#online li[data-user="bob"]', { state: "detached" });
    assert.equal(await alice.locator("#online-title").textContent(), "Online · 1");

    assert.deepEqual(browser.problems, []);
  },
});

Deno.test({
  ...browserTest,
  name: "browser: a newly opened tab shows the room's recent messages (history)",
  async fn() {
    await using demo = await startDemo();
    await using browser = await launchBrowser();
    const alice = await browser.open(demo.url, { name: "alice" });
    await joined(alice, "lobby");
    for (const text of ["one", "two", "three"]) {
      await say(alice, text);
      await alice.waitForSelector(`#log .msg .text:text-is("${text}")`);
    }
    const late = await browser.open(demo.url, { name: "late" });
    await joined(late, "lobby");
    await late.waitForSelector('#log .msg .text:text-is("three")');
    assert.deepEqual(await messageTexts(late), ["one", "two", "three"]);
    await say(alice, "live");
    await late.waitForSelector('#log .msg .text:text-is("live")');
    assert.deepEqual(await messageTexts(late), ["one", "two", "three", "live"], "nothing twice");
    assert.deepEqual(browser.problems, []);
  },
});

Deno.test({
  ...browserTest,
  name: "browser: a refused token is reported as an authentication failure",
  async fn() {
    await using demo = await startDemo();
    await using browser = await launchBrowser();
    const page = await browser.open(demo.url);

    // Well-formed, but signed with a key the server does not have.
    const forged = await mintToken(crypto.getRandomValues(new Uint8Array(32)), {
      sub: "mallory",
      rooms: ["*"],
    });
    await page.click("#token-box summary");
    await page.fill("#token", forged);
    await page.click("#connect");

    await page.waitForSelector('#banner:text-is("Authentication failed — check your token")');
    await waitForState(page, "closed");
    assert.match(await page.locator("#errors li").first().textContent() ?? "", /handshake_failed/);
    assert.ok(demo.audit.of("auth_failure").length >= 1, "the server saw the forged token");
    assert.equal(demo.server.stats().connections, 0);
    assert.deepEqual(browser.problems, []);
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL("demo-auth-failed.png", ARTIFACTS).pathname });
  },
});

Deno.test({
  ...browserTest,
  name: "browser: without dev mode the page asks for a token, and a pasted one works",
  async fn() {
    await using demo = await startDemo({ env: { JWT_SECRET: SECRET, DEMO: "1" } });
    await using browser = await launchBrowser();
    const page = await browser.open(demo.url, { connected: false });
    await page.waitForSelector('#banner:has-text("not in dev mode")');
    await waitForState(page, "closed");
    assert.equal(await page.getAttribute("#token-box", "open"), "");

    await page.fill("#token", await token("dave"));
    await page.click("#connect");
    await waitForState(page, "open");
    await page.waitForSelector('#whoami:text-is("Signed in as dave")');
    await joined(page, "lobby");
    await say(page, "pasted tokens work");
    await page.waitForSelector('#log .msg.mine .text:text-is("pasted tokens work")');
    assert.deepEqual(browser.problems, []);
  },
});

Deno.test({
  ...browserTest,
  name: "browser: after a server restart the page reconnects, rejoins and receives",
  async fn() {
    const devSecret = crypto.getRandomValues(new Uint8Array(32));
    const first = await startDemo({ devSecret });
    let second: DemoServer | undefined;
    try {
      await using browser = await launchBrowser();
      const page = await browser.open(first.url, { name: "carol" });
      await joined(page, "lobby");
      assert.equal(await page.getAttribute("#status", "data-instance"), first.server.instanceId);

      // Every socket gets 1001, then the listener goes; a new server takes the same port.
      await first.stop();
      await page.waitForSelector('#status[data-state="reconnecting"]');
      second = await startDemo({ port: first.port, devSecret });

      await page.waitForSelector(`#status[data-instance="${second.server.instanceId}"]`, {
        timeout: 20_000,
      });
      await waitForState(page, "open");
      await eventually(() => second!.server.stats().rooms === 1, 5000, "the rejoin");
      await second.server.publish("lobby", { text: "published after the restart" });
      await page.waitForSelector('#log .msg .text:text-is("published after the restart")');
      assert.equal(await page.locator("#log .msg").last().locator(".from").textContent(), "server");
      assert.deepEqual(browser.problems, []);
    } finally {
      await first.stop();
      await second?.stop();
    }
  },
});

Deno.test({
  ...browserTest,
  name: "browser: screenshots of the demo (desktop and phone) in tests/artifacts/",
  async fn() {
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    await using demo = await startDemo();
    await using browser = await launchBrowser();
    const alice = await browser.open(demo.url, { name: "alice" });
    const bob = await browser.open(demo.url, { name: "bob" });
    await joined(alice, "lobby");
    await joined(bob, "lobby");
    const lines: [Page, string][] = [
      [bob, "Hey! Is the realtime server up?"],
      [alice, "Yes — Deno, rooms, JWT auth, reconnects. Try killing it."],
      [bob, "Reconnected by itself, and my rooms came back."],
      [alice, "That's the point. Lunch at 1?"],
    ];
    for (const [page, text] of lines) {
      await say(page, text);
      await alice.waitForSelector(`#log .msg .text:text-is(${JSON.stringify(text)})`);
    }
    await alice.fill("#room-input", "design");
    await alice.click("#join");
    await joined(alice, "design");
    await bob.fill("#room-input", "design");
    await bob.click("#join");
    await joined(bob, "design");
    await alice.click('#rooms li[data-room="lobby"] .room-btn');
    await say(bob, "New mockups are in.");
    await eventually(
      async () =>
        (await alice.locator('#rooms li[data-room="design"] .badge').textContent()) === "1",
      5000,
      "the unread badge",
    );
    // One error, to show the panel: a room name the client refuses.
    await alice.fill("#room-input", "no spaces allowed");
    await alice.click("#join");
    await alice.waitForSelector("#errors li[data-code]");

    await alice.screenshot({ path: new URL("demo-desktop.png", ARTIFACTS).pathname });
    await alice.setViewportSize({ width: 390, height: 844 });
    await alice.screenshot({ path: new URL("demo-phone.png", ARTIFACTS).pathname });
    for (const name of ["demo-desktop.png", "demo-phone.png"]) {
      assert.ok((await Deno.stat(new URL(name, ARTIFACTS))).size > 5_000, name);
    }
    assert.deepEqual(browser.problems, []);
  },
});
