/**
 * Keeps the committed admin page bundle (`web/admin/admin.js` and
 * `web/admin/admin.css`) in step with its sources (`web/admin/page.ts`,
 * `page.css`, uPlot from npm): re-bundles with the same command as
 * `deno task build:admin` into a temp dir and compares byte for byte.
 *
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

Deno.test("web/admin/admin.js and admin.css are the current bundle of web/admin/page.ts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "admin_bundle_" });
  try {
    // Same arguments as the build:admin task, run from the repo root like deno task does.
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--minify",
        "--platform",
        "browser",
        "--format",
        "esm",
        "web/admin/page.ts",
        "-o",
        `${dir}/admin.js`,
      ],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, `deno bundle failed: ${new TextDecoder().decode(stderr)}`);
    for (const name of ["admin.js", "admin.css"]) {
      const expected = await Deno.readTextFile(`${dir}/${name}`);
      let committed: string;
      try {
        committed = await Deno.readTextFile(new URL(`web/admin/${name}`, ROOT));
      } catch {
        assert.fail(`web/admin/${name} is missing: run deno task build:admin`);
      }
      assert.ok(
        committed === expected,
        `web/admin/${name} is stale (it differs from a fresh bundle of web/admin/page.ts): ` +
          "run deno task build:admin and commit the result",
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the admin bundle is self-contained and keeps uPlot's licence notice", async () => {
  const script = await Deno.readTextFile(new URL("web/admin/admin.js", ROOT));
  const style = await Deno.readTextFile(new URL("web/admin/admin.css", ROOT));
  // Served as is: a leftover import would 404, a machine path would make the bundle unreproducible.
  assert.doesNotMatch(script, /^\s*import\s/m);
  assert.doesNotMatch(script + style, /registry\.npmjs\.org|\.cache\/deno/);
  assert.match(script, /uPlot 1\.6\.\d+, \(c\) \d{4} Leon Sorokin, MIT License/);
  assert.match(style, /\.uplot\b/, "uPlot's stylesheet");
  assert.match(style, /#dashboard|\.tiles/, "the page's own stylesheet");
});
