import assert from "node:assert/strict";
import { ConfigError, InternalEnvSchema, loadConfig, OperatorEnvSchema } from "../lib/config.ts";
import { rawHandshake, SECRET } from "./_helpers.ts";

Deno.test("defaults", () => {
  const c = loadConfig({ JWT_SECRET: SECRET });
  assert.equal(c.server.port, 8000);
  assert.equal(c.server.devMode, false);
  assert.deepEqual(c.auth.jwt.algorithms, ["HS256"]);
  assert.equal(c.limits.rate.capacity, 50);
  assert.equal(c.limits.rate.refillPerSec, 10);
  assert.equal(c.limits.maxMessageBytes, 65536);
  assert.equal(c.limits.maxRoomsPerConnection, 100);
  assert.equal(c.auth.allowedOrigins, undefined);
  assert.equal(c.bus.kind, "broadcast");
});

Deno.test("a bad value throws one line naming the variable", () => {
  const cases: [Record<string, string>, string, RegExp][] = [
    [{ PORT: "eighty" }, "PORT", /whole number/],
    [{ PORT: "70000" }, "PORT", /65535/],
    [{ RATE_LIMIT_CAPACITY: "0" }, "RATE_LIMIT_CAPACITY", /./],
    [{ TRUST_PROXY: "maybe" }, "TRUST_PROXY", /./],
    [{ ALLOWED_ORIGINS: "https://a.example/path" }, "ALLOWED_ORIGINS", /origin/],
    [{ JWT_ALGORITHMS: "HS256,none" }, "JWT_ALGORITHMS", /./],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL", /./],
    [{ BUS: "redis" }, "REDIS_URL", /required/],
    [{ JWT_JWKS_URL: "ftp://x" }, "JWT_JWKS_URL", /./],
    [{ API_KEY: "short" }, "API_KEY", /32/],
  ];
  for (const [env, variable, message] of cases) {
    assert.throws(
      () => loadConfig({ JWT_SECRET: SECRET, ...env }),
      (e: Error) => {
        assert.ok(e instanceof ConfigError, `${variable}: ${e}`);
        assert.equal(e.variable, variable);
        assert.match(e.message, message);
        assert.ok(!e.message.includes("\n"), "one line");
        assert.ok(e.message.startsWith(`${variable}: `));
        return true;
      },
    );
  }
});

Deno.test("every mistake is reported at once, one per variable, field and cross-field alike", () => {
  assert.throws(
    () =>
      loadConfig({
        JWT_SECRET: SECRET,
        PORT: "eighty",
        BUS: "redis",
        STORE: "kv",
        API_KEY: "short",
        TLS_KEY_FILE: "/k.pem",
        JWT_ALGORITHMS: "RS256",
        // Bad itself, so not also "required when BUS=redis": one line per variable.
        REDIS_URL: "http://not-redis",
      }),
    (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.deepEqual(
        e.issues.map((i) => i.variable),
        ["PORT", "JWT_ALGORITHMS", "API_KEY", "REDIS_URL", "TLS_CERT_FILE"],
      );
      assert.equal(e.variable, "PORT");
      assert.deepEqual(e.message.split("\n"), e.issues.map((i) => `${i.variable}: ${i.message}`));
      assert.match(e.issues[1]?.message ?? "", /need a public key/);
      assert.match(e.issues[4]?.message ?? "", /required when TLS_KEY_FILE is set/);
      return true;
    },
  );
  // A cross-field rule still runs when another variable failed to parse.
  assert.throws(
    () => loadConfig({ JWT_SECRET: SECRET, PORT: "x", BUS: "redis" }),
    (e: Error) =>
      e instanceof ConfigError &&
      e.issues.map((i) => `${i.variable}: ${i.message}`).join("|") ===
        "PORT: must be a whole number|REDIS_URL: is required when BUS=redis",
  );
});

Deno.test("the README's variable table lists exactly the operator's variables", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = readme.slice(
    readme.indexOf("## Configuration"),
    readme.indexOf("## HTTP endpoints"),
  );
  const [operatorTable = "", processTable = ""] = section.split("### Process flags");
  const names = (text: string) => [...text.matchAll(/^\| `([A-Z_]+)`/gm)].map((m) => m[1]).sort();
  assert.deepEqual(names(operatorTable), Object.keys(OperatorEnvSchema.shape).sort());
  assert.deepEqual(
    names(processTable),
    Object.keys(InternalEnvSchema.shape).filter((n) => n !== "DENO_DEPLOYMENT_ID").sort(),
  );
});

Deno.test("empty values fall back to defaults", () => {
  assert.equal(loadConfig({ JWT_SECRET: SECRET, PORT: "" }).server.port, 8000);
});

Deno.test("dev mode without a key; refused in production and on Deno Deploy", () => {
  assert.equal(loadConfig({}).server.devMode, true);
  assert.equal(loadConfig({}).server.demo, true);
  assert.equal(loadConfig({}).server.hostname, "127.0.0.1", "dev mode listens on loopback");
  assert.equal(
    loadConfig({ HOSTNAME: "0.0.0.0" }).server.hostname,
    "0.0.0.0",
    "unless told otherwise",
  );
  assert.equal(loadConfig({ JWT_SECRET: SECRET }).server.hostname, "0.0.0.0");
  assert.throws(() => loadConfig({ DENO_ENV: "production" }), /dev mode refuses/);
  assert.throws(() => loadConfig({ DENO_DEPLOYMENT_ID: "abc" }), /Deno Deploy/);
  assert.equal(loadConfig({ DENO_ENV: "production", JWT_SECRET: SECRET }).server.production, true);
});

const decoder = new TextDecoder();

async function runMain(env: Record<string, string>, untilLine?: RegExp) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", "main.ts"],
    cwd: new URL("..", import.meta.url).pathname,
    env: { LOG_LEVEL: "warning", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (untilLine === undefined) {
    const out = await child.output();
    return { code: out.code, stderr: decoder.decode(out.stderr), child: null };
  }
  let stderr = "";
  const reader = child.stderr.getReader();
  const deadline = Date.now() + 15_000;
  while (!untilLine.test(stderr) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    stderr += decoder.decode(value);
  }
  reader.releaseLock();
  return { code: null, stderr, child };
}

Deno.test("main.ts: a bad variable exits 1 with one clear line", async () => {
  const { code, stderr } = await runMain({ PORT: "nope", JWT_SECRET: SECRET });
  assert.equal(code, 1);
  assert.equal(stderr.trim(), "config error: PORT: must be a whole number");
});

Deno.test("main.ts: three bad variables, three lines, one per variable, exit 1", async () => {
  const { code, stderr } = await runMain({
    JWT_SECRET: SECRET,
    PORT: "nope",
    API_KEY: "short",
    BUS: "redis",
  });
  assert.equal(code, 1);
  assert.deepEqual(stderr.trim().split("\n"), [
    "config error: PORT: must be a whole number",
    "config error: API_KEY: must be at least 32 characters",
    "config error: REDIS_URL: is required when BUS=redis",
  ]);
});

Deno.test("main.ts: dev mode refuses to start with DENO_ENV=production", async () => {
  const { code, stderr } = await runMain({ DENO_ENV: "production" });
  assert.equal(code, 1);
  assert.match(stderr, /^config error: JWT_SECRET: no JWT key is configured/);
});

Deno.test("main.ts: dev mode starts, warns, prints a working token, serves /dev/token on loopback", async () => {
  const { child, stderr } = await runMain(
    { PORT: "0", HOSTNAME: "127.0.0.1" },
    /Listening on http:\/\/127\.0\.0\.1:(\d+)\//,
  );
  assert.ok(child);
  try {
    assert.match(stderr, /DEV MODE/);
    const port = Number(/Listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(stderr)?.[1]);
    const printed = /Token:\s+(\S+)/.exec(stderr)?.[1];
    assert.ok(printed, "a token is printed");
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${printed}`);
    const welcome = await new Promise<Record<string, unknown>>((resolve, reject) => {
      ws.onmessage = (e) => resolve(JSON.parse(e.data));
      ws.onerror = () => reject(new Error("connection failed"));
    });
    assert.equal(welcome.type, "welcome");
    assert.equal(welcome.userId, "dev-user");
    const closed = new Promise((r) => ws.onclose = r);
    ws.close();
    await closed;
    const res = await fetch(`http://127.0.0.1:${port}/dev/token?sub=alice`);
    const body = await res.json();
    assert.equal(res.status, 200);
    assert.equal(typeof body.token, "string");
    const rebound = await rawHandshake(port, "/dev/token", {
      host: "evil.example",
      upgrade: "",
      connection: "",
      "sec-websocket-key": "",
      "sec-websocket-version": "",
    });
    assert.equal(rebound.status, 404, "a non-loopback Host (DNS rebinding) gets nothing");
  } finally {
    child.kill("SIGTERM");
    const status = await child.status;
    assert.equal(status.code, 0, "SIGTERM is a clean exit");
    await child.stdout.cancel();
    await child.stderr.cancel();
  }
});

Deno.test("deno task token mints a token the server accepts", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-env",
      "--allow-read",
      "scripts/token.ts",
      "--sub",
      "alice",
      "--rooms",
      "chat:*",
      "--ttl",
      "10m",
    ],
    cwd: new URL("..", import.meta.url).pathname,
    env: { JWT_SECRET: SECRET },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, decoder.decode(out.stderr));
  const t = decoder.decode(out.stdout).trim();
  const { createJwtVerifier } = await import("../lib/core/auth.ts");
  const p = await (await createJwtVerifier(loadConfig({ JWT_SECRET: SECRET }).auth.jwt)).verify(t);
  assert.equal(p.userId, "alice");
  assert.deepEqual(p.rooms, ["chat:*"]);
  assert.ok(p.expiresAt! - Date.now() / 1000 <= 600);
});

Deno.test("KV settings: KV_PATH default, BUS=kv needs STORE=kv, drop rate only under DENO_ENV=test", () => {
  const base = { JWT_SECRET: SECRET };
  assert.equal(loadConfig(base).store.kv.path, "./data/realtime.kv");
  assert.equal(loadConfig({ ...base, KV_PATH: ":memory:" }).store.kv.path, ":memory:");
  assert.equal(
    loadConfig({ ...base, DENO_DEPLOYMENT_ID: "x" }).store.kv.path,
    undefined,
    "Deploy's own",
  );
  const kvBus = loadConfig({ ...base, BUS: "kv" });
  assert.deepEqual([kvBus.bus.kind, kvBus.store.kind, kvBus.history.store], ["kv", "kv", "kv"]);
  for (
    const [env, variable] of [
      [{ BUS: "kv", STORE: "memory" }, "STORE"],
      [{ BUS: "kv", STORE: "kv", HISTORY_STORE: "memory" }, "HISTORY_STORE"],
      [{ BUS_TEST_DROP_RATE: "0.3" }, "BUS_TEST_DROP_RATE"],
      [{ BUS_TEST_DROP_RATE: "1.5", DENO_ENV: "test" }, "BUS_TEST_DROP_RATE"],
    ] as const
  ) {
    assert.throws(
      () => loadConfig({ ...base, ...env }),
      (e: Error) => e instanceof ConfigError && e.variable === variable,
      JSON.stringify(env),
    );
  }
  assert.equal(
    loadConfig({ ...base, BUS_TEST_DROP_RATE: "0.3", DENO_ENV: "test" }).internal.busTestDropRate,
    0.3,
  );
  assert.equal(loadConfig(base).internal.busTestDropRate, 0);
});

Deno.test("front door: node + ws by default, Deno.serve on Deploy, WS_ENGINE=ws needs HTTP_SERVER=node", () => {
  const edge = loadConfig({ JWT_SECRET: SECRET }).server.edge;
  assert.deepEqual(edge, { httpServer: "node", wsEngine: "ws", headersTimeoutMs: 10_000 });
  const deploy = loadConfig({ JWT_SECRET: SECRET, DENO_DEPLOYMENT_ID: "x" }).server.edge;
  assert.equal(deploy.httpServer, "deno");
  assert.equal(deploy.wsEngine, "deno");
  const deno = loadConfig({ JWT_SECRET: SECRET, WS_ENGINE: "deno" }).server.edge;
  assert.deepEqual([deno.httpServer, deno.wsEngine], ["node", "deno"]);
  assert.throws(
    () => loadConfig({ JWT_SECRET: SECRET, HTTP_SERVER: "deno", WS_ENGINE: "ws" }),
    (err: Error) => err instanceof ConfigError && /WS_ENGINE/.test(err.message),
  );
  assert.throws(
    () => loadConfig({ JWT_SECRET: SECRET, HEADERS_TIMEOUT_MS: "5" }),
    /HEADERS_TIMEOUT_MS/,
  );
});
