/**
 * TLS on our own listener: HTTPS and wss:// with a certificate made here,
 * plain ws:// refused on that port, `/healthz` saying so, start-up stopped
 * with one line naming a bad file, and the warning for production in clear.
 */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../lib/config.ts";
import { plaintextWarning } from "../lib/edge/tls.ts";
import { Client, SECRET, sleep, token } from "./_helpers.ts";
import { freePort, type ServerProcess, spawnParallel, spawnServer } from "./_process.ts";

const CLIENT = new URL("./_tls_client.ts", import.meta.url).pathname;

interface Certificate extends AsyncDisposable {
  dir: string;
  cert: string;
  key: string;
  pem: string;
}

/**
 * A test CA and a certificate for 127.0.0.1 signed by it, in a fresh
 * directory (a self-signed leaf will not do: rustls refuses a CA certificate
 * used as the server's own). `pem` is the CA, for clients to trust. Disposing
 * of it removes the directory.
 */
async function makeCertificate(): Promise<Certificate> {
  const dir = await Deno.makeTempDir({ prefix: "realtime-tls-" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const steps = [
    ["req", "-x509", ...ec, "-keyout", `${dir}/ca.key`, "-out", `${dir}/ca.pem`, "-days", "1"]
      .concat(["-subj", "/CN=realtime test CA"]),
    ["req", ...ec, "-keyout", `${dir}/key.pem`, "-out", `${dir}/server.csr`]
      .concat(["-subj", "/CN=127.0.0.1"]),
    ["x509", "-req", "-in", `${dir}/server.csr`, "-CA", `${dir}/ca.pem`, "-CAkey", `${dir}/ca.key`]
      .concat([
        "-CAcreateserial",
        "-out",
        `${dir}/cert.pem`,
        "-days",
        "1",
        "-extfile",
        `${dir}/ext`,
      ]),
  ];
  await Deno.writeTextFile(
    `${dir}/ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
  );
  for (const args of steps) {
    const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
      .output();
    if (!out.success) throw new Error(`openssl failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return {
    dir,
    cert: `${dir}/cert.pem`,
    key: `${dir}/key.pem`,
    pem: await Deno.readTextFile(`${dir}/ca.pem`),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

const haveOpenssl = (() => {
  try {
    return new Deno.Command("openssl", { args: ["version"] }).outputSync().success;
  } catch {
    return false;
  }
})();
const tlsTest = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: !haveOpenssl && Deno.env.get("CI") === undefined, fn });

function baseEnv(port: number): Record<string, string> {
  return {
    PORT: String(port),
    HOSTNAME: "127.0.0.1",
    JWT_SECRET: SECRET,
    BUS: "memory",
    LOG_LEVEL: "error",
  };
}

async function startTls(
  cert: { cert: string; key: string; pem: string },
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  const port = freePort();
  return await spawnServer(["run", "-A", "main.ts"], {
    port,
    caCert: cert.pem,
    env: { ...baseEnv(port), TLS_CERT_FILE: cert.cert, TLS_KEY_FILE: cert.key, ...env },
  });
}

tlsTest("wss://: a client trusting the certificate gets welcome and chats", async () => {
  await using cert = await makeCertificate();
  await using server = await startTls(cert);
  assert.ok(server.wsUrl.startsWith("wss://"));
  const client = Deno.createHttpClient({ caCerts: [cert.pem] });
  const health = await (await fetch(`${server.httpUrl}/healthz`, { client })).json();
  client.close();
  assert.equal(health.tls, true, "/healthz says TLS is on");
  assert.match(server.output(), /Listening on https:\/\/127\.0\.0\.1:\d+\/ \(TLS on\)/);

  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--cert",
      `${cert.dir}/ca.pem`,
      "--allow-net",
      CLIENT,
      server.wsUrl,
      await token("alice"),
      await token("bob"),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, `client failed: ${stdout} ${new TextDecoder().decode(out.stderr)}`);
  const seen = JSON.parse(stdout.trim());
  assert.equal(seen.welcome.type, "welcome");
  assert.equal(seen.welcome.userId, "alice");
  assert.deepEqual(seen.joined.map((m: { type: string }) => m.type), ["joined", "joined"]);
  assert.deepEqual(seen.ack, { type: "ack", id: "m" });
  assert.equal(seen.received.from, "alice");
  assert.deepEqual(seen.received.payload, { text: "over tls" });
});

tlsTest("plain ws:// and http:// to the TLS port fail", async () => {
  await using cert = await makeCertificate();
  await using server = await startTls(cert);
  const plain = new Client(`ws://127.0.0.1:${server.port}/ws?token=${await token("alice")}`);
  await assert.rejects(plain.opened, /websocket error before open/);
  await plain.closed;
  await assert.rejects(async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/healthz`);
    await res.body?.cancel();
  });
});

tlsTest("a missing key file stops start-up with one line naming it", async () => {
  await using cert = await makeCertificate();
  const missing = `${cert.dir}/no-such-key.pem`;
  const port = freePort();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts"],
    cwd: new URL("..", import.meta.url).pathname,
    env: { ...baseEnv(port), TLS_CERT_FILE: cert.cert, TLS_KEY_FILE: missing },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  assert.notEqual(out.code, 0);
  assert.equal(stderr, `config error: TLS_KEY_FILE: cannot read ${missing}: no such file`);

  // A file that is not a key: the same kind of line.
  const notPem = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts"],
    cwd: new URL("..", import.meta.url).pathname,
    env: { ...baseEnv(port), TLS_CERT_FILE: cert.cert, TLS_KEY_FILE: cert.cert },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.notEqual(notPem.code, 0);
  assert.match(
    new TextDecoder().decode(notPem.stderr).trim(),
    new RegExp(`^config error: TLS_KEY_FILE: ${cert.cert} is not a PEM private key`),
  );
});

Deno.test("config: TLS_CERT_FILE and TLS_KEY_FILE come together", () => {
  const base = { JWT_SECRET: SECRET };
  assert.throws(
    () => loadConfig({ ...base, TLS_CERT_FILE: "/c.pem" }),
    (err: unknown) =>
      err instanceof ConfigError && err.variable === "TLS_KEY_FILE" &&
      err.message ===
        "TLS_KEY_FILE: is required when TLS_CERT_FILE is set (TLS needs both the certificate and its key)",
  );
  assert.throws(
    () => loadConfig({ ...base, TLS_KEY_FILE: "/k.pem" }),
    /^ConfigError: TLS_CERT_FILE: is required when TLS_KEY_FILE is set/,
  );
  assert.deepEqual(loadConfig({ ...base, TLS_CERT_FILE: "/c", TLS_KEY_FILE: "/k" }).tls, {
    certFile: "/c",
    keyFile: "/k",
  });
  assert.equal(loadConfig(base).tls, undefined);
});

Deno.test("production in clear warns, unless TLS, a trusted proxy or Deploy", () => {
  const base = { JWT_SECRET: SECRET, DENO_ENV: "production" };
  assert.match(plaintextWarning(loadConfig(base)) ?? "", /Tokens travel in the handshake IN CLEAR/);
  assert.equal(plaintextWarning(loadConfig({ ...base, TRUST_PROXY: "1" })), undefined);
  assert.equal(
    plaintextWarning(loadConfig({ ...base, TLS_CERT_FILE: "/c", TLS_KEY_FILE: "/k" })),
    undefined,
  );
  assert.equal(plaintextWarning(loadConfig({ ...base, DENO_DEPLOYMENT_ID: "x" })), undefined);
  assert.equal(plaintextWarning(loadConfig({ JWT_SECRET: SECRET })), undefined);
});

Deno.test("production in clear: the server starts, with the warning on stderr", async () => {
  const port = freePort();
  await using server = await spawnServer(["run", "-A", "main.ts"], {
    port,
    env: { ...baseEnv(port), DENO_ENV: "production" },
  });
  assert.match(
    server.output(),
    /WARNING: DENO_ENV=production, but this server speaks plain HTTP/,
  );
  const health = await (await fetch(`${server.httpUrl}/healthz`)).json();
  assert.equal(health.tls, false);
});

tlsTest("start:parallel serves TLS too: two isolates on one port", async () => {
  await using cert = await makeCertificate();
  const port = freePort();
  await using server = await spawnParallel({
    ...baseEnv(port),
    BUS: "broadcast",
    BUS_CHANNEL: `tls-${crypto.randomUUID()}`,
    TLS_CERT_FILE: cert.cert,
    TLS_KEY_FILE: cert.key,
  }, { port, caCert: cert.pem, stopTimeoutMs: 5000 });
  const seen = new Set<string>();
  // A fresh client per request: a kept-alive connection stays on one isolate.
  for (let i = 0; i < 100 && seen.size < 2; i++) {
    const client = Deno.createHttpClient({ caCerts: [cert.pem] });
    const health = await (await fetch(`${server.httpUrl}/healthz`, { client })).json();
    client.close();
    assert.equal(health.tls, true);
    seen.add(health.instanceId);
    if (seen.size < 2) await sleep(20);
  }
  assert.equal(seen.size, 2, "connections are spread over both isolates");
  const status = await server.stop();
  assert.equal(status.code, 0, "exits 0 on SIGTERM");
});
