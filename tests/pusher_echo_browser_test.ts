/**
 * Laravel Echo with `pusher-js` (their browser builds, unchanged) in
 * headless Chromium against the Pusher front door: a page served from
 * another origin (allowed by the app's `allowedOrigins`) whose backend signs
 * subscriptions as Laravel's `/broadcasting/auth` does, with integer user
 * ids. Two users: here, joining, whisper, a private event, leaving.
 * Without Chromium the test is ignored (see browser_test.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import "pusher-js";
import type { Page } from "playwright-core";
import { CHROMIUM, launchChromium } from "./_browser.ts";
import { eventually } from "./_helpers.ts";
import { APP, serverSdk, startPusherServer } from "./_pusher.ts";

/** pusher-js's and Laravel Echo's browser builds, from the npm cache Deno uses. */
async function browserBuilds(): Promise<{ pusher: string; echo: string }> {
  const pusherPath = createRequire(import.meta.url).resolve("pusher-js/dist/web/pusher.min.js");
  // Laravel Echo's exports map hides its dist/ files from resolution: look beside pusher-js.
  const registry = join(dirname(pusherPath), "..", "..", "..", "..");
  let echoPath: string | undefined;
  for await (const entry of Deno.readDir(join(registry, "laravel-echo"))) {
    if (entry.isDirectory && entry.name.startsWith("2.")) {
      echoPath = join(registry, "laravel-echo", entry.name, "dist", "echo.iife.js");
    }
  }
  if (echoPath === undefined) throw new Error("laravel-echo 2 is not in the npm cache");
  return { pusher: await Deno.readTextFile(pusherPath), echo: await Deno.readTextFile(echoPath) };
}

const PAGE = `<!doctype html>
<meta charset="utf-8">
<script src="/pusher.js"></script>
<script src="/echo.js"></script>
<script>
  const q = new URLSearchParams(location.search);
  window.events = [];
  window.echo = new Echo.default({
    broadcaster: "pusher",
    key: q.get("key"),
    cluster: "mt1",
    wsHost: "127.0.0.1",
    wsPort: Number(q.get("port")),
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    authEndpoint: "/broadcasting/auth",
    auth: { headers: { "X-User": q.get("user") } },
  });
  echo.join("chat")
    .here((users) => events.push(["here", users.map((u) => u.name).sort()]))
    .joining((user) => events.push(["joining", user.name]))
    .leaving((user) => events.push(["leaving", user.name]))
    .listenForWhisper("typing", (e) => events.push(["whisper", e.name]));
  echo.private("orders").listen(".OrderShipped", (e) => events.push(["shipped", e.id]));
</script>`;

const USERS: Record<string, string> = { "1": "Ann", "2": "Ben" };

/** The app's page and its Laravel-like backend, on another origin than the realtime server. */
function pageServer(
  builds: { pusher: string; echo: string },
  realtimePort: () => number,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const { pathname } = new URL(req.url);
    const js = { "content-type": "text/javascript" };
    if (pathname === "/pusher.js") return new Response(builds.pusher, { headers: js });
    if (pathname === "/echo.js") return new Response(builds.echo, { headers: js });
    if (pathname === "/broadcasting/auth") {
      const form = new URLSearchParams(await req.text());
      const user = req.headers.get("x-user") ?? "";
      const socketId = form.get("socket_id") ?? "";
      const channel = form.get("channel_name") ?? "";
      const sdk = serverSdk(realtimePort());
      const signed = channel.startsWith("presence-")
        // Laravel's user ids are integers.
        ? sdk.authorizeChannel(socketId, channel, {
          user_id: Number(user) as unknown as string,
          user_info: { id: Number(user), name: USERS[user] ?? "?" },
        })
        : sdk.authorizeChannel(socketId, channel);
      return Response.json(signed);
    }
    return new Response(PAGE, { headers: { "content-type": "text/html" } });
  });
}

async function events(page: Page): Promise<[string, unknown][]> {
  return await page.evaluate(() =>
    (globalThis as unknown as { events: [string, unknown][] }).events
  );
}

async function until(page: Page, event: [string, unknown]): Promise<void> {
  await eventually(
    async () => (await events(page)).some((e) => JSON.stringify(e) === JSON.stringify(event)),
    10_000,
    JSON.stringify(event),
  );
}

Deno.test({
  name: "Laravel Echo + pusher-js in Chromium: here, joining, whisper, private event, leaving",
  ignore: CHROMIUM === undefined,
  async fn() {
    const builds = await browserBuilds();
    let realtimePort = 0;
    const pages = pageServer(builds, () => realtimePort);
    try {
      const origin = `http://127.0.0.1:${pages.addr.port}`;
      await using ts = await startPusherServer({}, {
        enableClientMessages: true,
        allowedOrigins: [origin],
      });
      realtimePort = ts.port;
      await using chromium = await launchChromium({
        profilePrefix: "pusher-echo-",
        viewport: { width: 800, height: 600 },
      });
      const url = (user: string) => `${origin}/?key=${APP.key}&port=${ts.port}&user=${user}`;
      const ann = await chromium.newPage();
      await ann.goto(url("1"));
      await until(ann, ["here", ["Ann"]]);
      const ben = await chromium.newPage();
      await ben.goto(url("2"));
      await until(ben, ["here", ["Ann", "Ben"]]);
      await until(ann, ["joining", "Ben"]);
      await ben.evaluate(() =>
        (globalThis as unknown as {
          echo: { join(c: string): { whisper(e: string, d: unknown): void } };
        })
          .echo.join("chat").whisper("typing", { name: "Ben" })
      );
      await until(ann, ["whisper", "Ben"]);
      // Never echoed to the sender.
      assert.equal((await events(ben)).some(([name]) => name === "whisper"), false);
      const pusher = ts.server.pusher!;
      await eventually(async () =>
        (await pusher.channels.channel(pusher.apps.byId(APP.id)!, "private-orders"))
          .subscriptionCount === 2
      );
      await pusher.channels.trigger(pusher.apps.byId(APP.id)!, {
        name: "OrderShipped",
        data: JSON.stringify({ id: 7 }),
        channels: ["private-orders"],
      });
      await until(ann, ["shipped", 7]);
      await until(ben, ["shipped", 7]);
      await ben.close();
      await until(ann, ["leaving", "Ben"]);
      assert.deepEqual(chromium.problems, []);
    } finally {
      await pages.shutdown();
    }
  },
});
