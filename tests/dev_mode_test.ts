/**
 * Dev mode stays on this machine: it listens on 127.0.0.1 unless `HOSTNAME`
 * says otherwise, and `/dev/token` judges "loopback" by the TCP peer, never
 * by `X-Forwarded-For`, even with `TRUST_PROXY=1`.
 *
 * The machine's non-loopback address (its first IPv4 interface other than
 * `lo`) plays the remote client: a connection to it comes from it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { eventually } from "./_helpers.ts";
import { freePort, type ServerProcess, spawnServer } from "./_process.ts";

/** An IPv4 address of this machine that is not loopback, if it has one. */
const lanAddress = Deno.networkInterfaces().find((i) =>
  i.family === "IPv4" && !i.address.startsWith("127.")
)?.address;
if (lanAddress === undefined) {
  console.warn("Skipping remote-peer dev mode tests: this machine has no non-loopback IPv4.");
}

/** Dev mode: every key variable blanked, so an inherited one cannot turn it off. */
function devServer(env: Record<string, string>): Promise<ServerProcess> {
  const port = freePort();
  return spawnServer(["run", "-A", "main.ts"], {
    port,
    env: {
      PORT: String(port),
      JWT_SECRET: "",
      JWT_PUBLIC_KEY: "",
      JWT_JWKS_URL: "",
      DENO_ENV: "",
      DENO_DEPLOYMENT_ID: "",
      LOG_LEVEL: "error",
      BUS: "memory",
      ...env,
    },
  });
}

/** Sends one raw GET from a connection to `hostname` and returns the status line. */
async function rawGet(
  hostname: string,
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<string> {
  const conn = await Deno.connect({ hostname, port });
  try {
    const head = `GET ${path} HTTP/1.1\r\n` +
      Object.entries({ ...headers, connection: "close" }).map(([k, v]) => `${k}: ${v}\r\n`)
        .join("") +
      "\r\n";
    await conn.write(new TextEncoder().encode(head));
    const buf = new Uint8Array(8192);
    let text = "";
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text;
  } finally {
    conn.close();
  }
}

Deno.test({
  name: "dev mode: X-Forwarded-For 127.0.0.1 from a remote peer gets no token, TRUST_PROXY or not",
  ignore: lanAddress === undefined,
  async fn() {
    for (const trustProxy of ["1", "0"]) {
      await using server = await devServer({ HOSTNAME: "0.0.0.0", TRUST_PROXY: trustProxy });
      const forged = await rawGet(lanAddress!, server.port, "/dev/token?sub=admin&rooms=*", {
        host: "localhost",
        "x-forwarded-for": "127.0.0.1",
      });
      assert.match(forged, /^HTTP\/1\.1 404 /, `TRUST_PROXY=${trustProxy}: ${forged}`);
      assert.doesNotMatch(forged, /"token"/);
      // The same request from a loopback peer is the demo's own, and works.
      const local = await rawGet("127.0.0.1", server.port, "/dev/token?sub=alice", {
        host: "localhost",
      });
      assert.match(local, /^HTTP\/1\.1 200 /, local);
      assert.match(local, /"token"/);
    }
  },
});

Deno.test("dev mode: a loopback peer behind a forwarding proxy gets no token", async () => {
  // A proxy on this machine connects from loopback; what it forwards is not local.
  await using server = await devServer({ HOSTNAME: "127.0.0.1", TRUST_PROXY: "1" });
  for (
    const header of [
      { "x-forwarded-for": "203.0.113.9" },
      { "x-forwarded-for": "127.0.0.1" },
      { forwarded: "for=203.0.113.9" },
      { "x-real-ip": "203.0.113.9" },
    ]
  ) {
    const proxied = await rawGet("127.0.0.1", server.port, "/dev/token?sub=admin", {
      host: "localhost",
      ...header,
    });
    assert.match(proxied, /^HTTP\/1\.1 404 /, JSON.stringify(header));
  }
});

Deno.test({
  name: "dev mode listens on 127.0.0.1 by default, on 0.0.0.0 only when HOSTNAME says so",
  ignore: lanAddress === undefined,
  async fn() {
    {
      await using byDefault = await devServer({ HOSTNAME: "" });
      await eventually(() => /Listening on/.test(byDefault.output()), 5000, "the listening line");
      assert.match(byDefault.output(), /Listening on http:\/\/127\.0\.0\.1:/);
      assert.match(byDefault.output(), /Demo:\s+http:\/\/localhost:\d+\//, "the demo URL");
      await assert.rejects(
        Deno.connect({ hostname: lanAddress!, port: byDefault.port }),
        Deno.errors.ConnectionRefused,
        "not reachable from the network",
      );
    }
    {
      await using explicit = await devServer({ HOSTNAME: "0.0.0.0" });
      await eventually(() => /Listening on/.test(explicit.output()), 5000, "the listening line");
      assert.match(explicit.output(), /Listening on http:\/\/0\.0\.0\.0:/);
      const conn = await Deno.connect({ hostname: lanAddress!, port: explicit.port });
      conn.close();
    }
  },
});
