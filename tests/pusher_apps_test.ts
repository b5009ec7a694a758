import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../lib/config.ts";
import { DEV_PUSHER_APP, loadPusherApps, PusherApps } from "../lib/protocols/pusher/apps.ts";
import { constantTimeEqual, hmacHex, verifyAuth } from "../lib/protocols/pusher/signature.ts";
import { SECRET } from "./_helpers.ts";

Deno.test("pusher config: the one-app variables come all three or not at all", () => {
  let issues: string[] = [];
  try {
    loadConfig({ JWT_SECRET: SECRET, PUSHER_APP_ID: "1", PUSHER_APP_KEY: "k" });
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    issues = err.issues.map((i) => i.variable);
  }
  assert.deepEqual(issues, ["PUSHER_APP_SECRET"]);
  const config = loadConfig({
    JWT_SECRET: SECRET,
    PUSHER_APP_ID: "1",
    PUSHER_APP_KEY: "k",
    PUSHER_APP_SECRET: "s".repeat(16),
  });
  assert.deepEqual(config.pusher.app, { id: "1", key: "k", secret: "s".repeat(16) });
  assert.equal(config.pusher.devApp, false);
  assert.equal(loadConfig({}).pusher.devApp, true);
});

Deno.test("pusher apps: Pusher's defaults, unique ids and keys, one line naming a bad field", () => {
  const apps = PusherApps.of([{ id: "1", key: "k", secret: "s".repeat(16) }]);
  const app = apps.byKey("k");
  assert.ok(app !== undefined);
  assert.equal(apps.byId("1"), app);
  assert.equal(app.enableClientMessages, false);
  assert.equal(app.maxClientEventsPerSecond, 10);
  assert.equal(app.maxPresenceMembersPerChannel, 100);
  assert.equal(app.maxEventBatchSize, 10);
  assert.throws(
    () => PusherApps.of([{ id: "1", key: "k", secret: "s".repeat(16), maxConnections: -1 }]),
    /^TypeError: \[0\]\.maxConnections: /,
  );
  assert.throws(
    () => PusherApps.of([{ id: "1", key: "k", secret: "s".repeat(16), colour: "red" }]),
    /^TypeError: \[0\]: .*colour/,
  );
  assert.throws(
    () =>
      PusherApps.of([
        { id: "1", key: "k", secret: "s".repeat(16) },
        { id: "2", key: "k", secret: "s".repeat(16) },
      ]),
    /\[1\]\.key: "k" is used by another app/,
  );
});

Deno.test("pusher apps: loaded from the file, the variables and dev mode", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/apps.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify([{ id: "2", key: "k2", secret: "t".repeat(20), enableClientMessages: true }]),
    );
    const apps = await loadPusherApps({
      app: { id: "1", key: "k1", secret: "s".repeat(16) },
      appsFile: file,
      devApp: true,
    });
    assert.deepEqual(apps.list().map((a) => a.id).sort(), ["1", "2", "app-id"]);
    assert.equal(apps.byKey("k2")?.enableClientMessages, true);
    assert.equal(apps.byKey(DEV_PUSHER_APP.key)?.secret, "app-secret");
    await Deno.writeTextFile(file, JSON.stringify([{ id: "2", key: "k2" }]));
    await assert.rejects(
      loadPusherApps({ app: undefined, appsFile: file, devApp: false }),
      /^TypeError: PUSHER_APPS_FILE: \[0\]\.secret: /,
    );
    await Deno.writeTextFile(file, "{");
    await assert.rejects(
      loadPusherApps({ app: undefined, appsFile: file, devApp: false }),
      /PUSHER_APPS_FILE: not JSON/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pusher signatures: Pusher's documented channel auth example", async () => {
  // https://pusher.com/docs/channels/library_auth_reference/auth-signatures/
  const app = { key: "278d425bdf160c739803", secret: "7ad3773142a6692b25b8" };
  const mac = await hmacHex(app.secret, "1234.1234:private-foobar");
  assert.equal(mac, "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
  assert.ok(await verifyAuth(app, `${app.key}:${mac}`, "1234.1234:private-foobar"));
  assert.ok(!await verifyAuth(app, `${app.key}:${mac}`, "1234.1235:private-foobar"));
  assert.ok(!await verifyAuth(app, `other:${mac}`, "1234.1234:private-foobar"));
  assert.ok(!await verifyAuth(app, mac, "1234.1234:private-foobar"));
  assert.ok(constantTimeEqual("abc", "abc"));
  assert.ok(!constantTimeEqual("abc", "abd"));
  assert.ok(!constantTimeEqual("abc", "abcd"));
});
