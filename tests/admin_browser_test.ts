/**
 * The admin page in a real browser (Debian's Chromium driven by
 * playwright-core): a wrong key is refused with a clear message, the right
 * key (or an admin JWT) shows live figures that follow real connections,
 * the charts move, the CSP lets the page run without a single violation, and
 * the credential ends up in no URL, storage or cookie. Screenshots go to
 * tests/artifacts/ (ignored by git); `docs/admin.png` is a copy of one.
 *
 * Without Chromium the tests are ignored (tests/browser_test.ts fails under
 * CI when it is missing).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { loadConfig } from "../lib/config.ts";
import { staticRoutes } from "../lib/http/static_routes.ts";
import type { Client, TestServer } from "./_helpers.ts";
import { connectAs, join, SECRET, sleep, startServer, token } from "./_helpers.ts";
import { CHROMIUM, launchChromium } from "./_browser.ts";

const ARTIFACTS = new URL("./artifacts/", import.meta.url);
const API_KEY = "admin-page-key-0123456789-0123456789-0123456789";

async function startAdmin(): Promise<TestServer> {
  const env = { API_KEY, ADMIN_ROLE: "admin" };
  const config = loadConfig({ JWT_SECRET: SECRET, ...env });
  return await startServer(env, { routes: await staticRoutes(config) });
}

interface Browser extends AsyncDisposable {
  /** Opens `/admin` of `ts`. */
  open(ts: TestServer): Promise<Page>;
  /** Uncaught exceptions and CSP violations the pages reported. */
  readonly problems: string[];
}

async function launchBrowser(): Promise<Browser> {
  const chromium = await launchChromium({
    profilePrefix: "admin_browser_test_",
    viewport: { width: 1200, height: 900 },
    problemPattern: /Content Security Policy|Refused to/i,
  });
  return {
    problems: chromium.problems,
    async open(ts) {
      const page = await chromium.newPage();
      await page.goto(`${ts.httpUrl}/admin`);
      return page;
    },
    [Symbol.asyncDispose]: () => chromium[Symbol.asyncDispose](),
  };
}

async function signIn(page: Page, credential: string): Promise<void> {
  await page.fill("#key", credential);
  await page.click("#login-form button[type=submit]");
}

async function waitForTile(page: Page, tile: string, value: string): Promise<void> {
  await page.waitForSelector(`#tile-${tile} output[data-value="${value}"]`);
}

/** The pixels of a chart's canvas, to see it change. */
function chartPixels(page: Page, chart: string): Promise<string> {
  // A string, evaluated in the page: this file is type-checked without the DOM library.
  return page.evaluate(`document.querySelector("#chart-${chart} canvas").toDataURL()`);
}

/** Waits until the number in `selector`'s attribute `name` passes `check`. */
async function waitForNumber(
  page: Page,
  selector: string,
  name: string,
  check: (n: number) => boolean,
): Promise<number> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const value = Number(await page.getAttribute(selector, name));
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`${selector} ${name} stayed at ${value}`);
    await sleep(100);
  }
}

async function screenshot(page: Page, name: string, fullPage = true): Promise<void> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: new URL(name, ARTIFACTS).pathname, fullPage });
}

Deno.test({
  name: "admin page: a wrong key gets a clear error, the right one shows live figures",
  ignore: CHROMIUM === undefined,
  async fn() {
    const ts = await startAdmin();
    const clients: Client[] = [];
    let chatter: ReturnType<typeof setInterval> | undefined;
    try {
      await using browser = await launchBrowser();
      const page = await browser.open(ts);

      await signIn(page, "not-the-key-0123456789-0123456789-0123");
      await page.waitForSelector("#error:has-text('Wrong API key or token')");
      assert.equal(await page.isHidden("#dashboard"), true);
      assert.equal(await page.inputValue("#key"), "", "the field does not keep a refused key");
      await screenshot(page, "admin-wrong-key.png");

      await signIn(page, API_KEY);
      await page.waitForSelector("#dashboard:not([hidden])");
      assert.equal(await page.getAttribute("#instance", "data-instance"), ts.server.instanceId);
      await waitForTile(page, "connections", "0");

      // Three real clients arrive; one keeps talking in a room the other two are in.
      for (const name of ["alice", "bob", "carol"]) {
        const client = await connectAs(ts, name);
        await join(client, "lobby");
        clients.push(client);
      }
      await join(clients[0]!, "quiet");
      await waitForTile(page, "connections", "3");
      await page.waitForSelector(`#chart-connections[data-last="3"]`);
      const before = await chartPixels(page, "messages");
      let n = 0;
      chatter = setInterval(
        () => clients[0]!.send({ type: "message", room: "lobby", payload: n++ }),
        80,
      );
      await waitForNumber(page, "#tile-messages-out output", "data-value", (v) => v > 0);
      await page.waitForSelector(`#rooms-by-rate tr[data-key="lobby"]`);
      await page.waitForSelector(`#rooms-by-members tr[data-key="lobby"]`);
      assert.notEqual(await chartPixels(page, "messages"), before, "the messages chart moved");
      const points = Number(await page.getAttribute("#chart-messages", "data-points"));
      await waitForNumber(page, "#chart-messages", "data-points", (v) => v > points);
      // A few more seconds of traffic so that the screenshot shows curves, not a dot.
      await waitForNumber(page, "#chart-messages", "data-points", (v) => v >= 8);
      await screenshot(page, "admin.png");
      // The first screen only: what docs/admin.png (in the README) is a copy of.
      await screenshot(page, "admin-first-screen.png", false);

      clearInterval(chatter);
      chatter = undefined;
      await clients.pop()!.close();
      await waitForTile(page, "connections", "2");
      await page.waitForSelector(`#table-closes tr[data-key="1000"]`);

      // The credential is in memory only.
      assert.equal(new URL(page.url()).search, "");
      assert.equal(new URL(page.url()).hash, "");
      const stored = await page.evaluate(
        "[localStorage.length, sessionStorage.length, document.cookie]",
      );
      assert.deepEqual(stored, [0, 0, ""]);
      assert.equal(await page.content().then((html) => html.includes(API_KEY)), false);

      await page.click("#logout");
      await page.waitForSelector("#login:not([hidden])");
      assert.equal(await page.isHidden("#dashboard"), true);

      // An admin JWT works too; a user's JWT is told it lacks the role.
      await signIn(page, await token("someone"));
      await page.waitForSelector("#error:has-text('does not carry the admin role')");
      await signIn(page, await token("ops", { roles: ["admin"] }));
      await waitForTile(page, "connections", "2");
      assert.deepEqual(browser.problems, []);
    } finally {
      if (chatter !== undefined) clearInterval(chatter);
      for (const client of clients) await client.close();
      await ts.close();
    }
  },
});
