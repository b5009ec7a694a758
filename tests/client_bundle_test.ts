/**
 * Keeps the committed browser bundle `web/client/client.js` in step with its
 * source `lib/client/` (entry `client.ts`): re-bundles with the same command
 * as `deno task build:client` (minified, names kept) into a temp file and
 * compares byte for byte.
 *
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const COMMITTED = new URL("web/client/client.js", ROOT);

Deno.test("web/client/client.js is the current bundle of lib/client/client.ts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "client_bundle_" });
  try {
    const fresh = `${dir}/client.js`;
    // Same arguments as the build:client task, run from the repo root like deno task does:
    // the bundle names its source relative to the working directory.
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--minify",
        "--keep-names",
        "--platform",
        "browser",
        "--format",
        "esm",
        "lib/client/client.ts",
        "-o",
        fresh,
      ],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, `deno bundle failed: ${new TextDecoder().decode(stderr)}`);
    const expected = await Deno.readTextFile(fresh);
    let committed: string;
    try {
      committed = await Deno.readTextFile(COMMITTED);
    } catch {
      assert.fail("web/client/client.js is missing: run deno task build:client");
    }
    assert.ok(
      committed === expected,
      "web/client/client.js is stale (it differs from a fresh bundle of lib/client/client.ts): " +
        "run deno task build:client and commit the result",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the bundle is a self-contained browser ES module", async () => {
  const text = await Deno.readTextFile(COMMITTED);
  // The server serves it as is: a leftover import would 404 in the browser.
  // The bundle is minified, so a static import may follow a `;` or `}` instead of a newline.
  assert.doesNotMatch(text, /(?:^|[;}])\s*import\s*[\w{*"']/m);
  assert.doesNotMatch(text, /\bDeno\.[A-Za-z]/);
  const mod = await import(COMMITTED.href) as Record<string, unknown>;
  for (const name of ["connect", "RealtimeClient", "RealtimeError", "backoffDelay"]) {
    assert.equal(typeof mod[name], "function", `the bundle exports ${name}`);
  }
});
