/**
 * Keeps the browser client's two builds in step with their one source,
 * `packages/client/src/` (entry `client.ts`): the committed bundle the
 * server serves as `/client.js` (`web/client/client.js`) must equal a fresh
 * bundle, and the npm package (`packages/client/dist`, built by the same
 * `scripts/build_packages.ts`) must export exactly what the bundle exports.
 *
 * @module
 */
import assert from "node:assert/strict";
import { buildPackage, bundleWebClient } from "../scripts/build_packages.ts";

const ROOT = new URL("../", import.meta.url);
const COMMITTED = new URL("web/client/client.js", ROOT);

Deno.test("web/client/client.js is the current bundle of packages/client/src", async () => {
  const dir = await Deno.makeTempDir({ prefix: "client_bundle_" });
  try {
    const fresh = `${dir}/client.js`;
    await bundleWebClient(fresh);
    const expected = await Deno.readTextFile(fresh);
    let committed: string;
    try {
      committed = await Deno.readTextFile(COMMITTED);
    } catch {
      assert.fail("web/client/client.js is missing: run deno task build:client");
    }
    assert.ok(
      committed === expected,
      "web/client/client.js is stale (it differs from a fresh bundle of packages/client/src): " +
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
  for (
    const name of ["connect", "RealtimeClient", "RealtimeError", "Subscription", "backoffDelay"]
  ) {
    assert.equal(typeof mod[name], "function", `the bundle exports ${name}`);
  }
});

Deno.test("the npm package and /client.js export the same API from the same source", async () => {
  const dir = await Deno.makeTempDir({ prefix: "client_dist_" });
  try {
    await buildPackage("client", dir);
    const dist = await import(`file://${dir}/client.js`) as Record<string, unknown>;
    const bundle = await import(COMMITTED.href) as Record<string, unknown>;
    assert.deepEqual(Object.keys(dist).sort(), Object.keys(bundle).sort());
    const types = await Deno.readTextFile(`${dir}/client.d.ts`);
    assert.match(types, /export declare function connect\(/);
    assert.doesNotMatch(types, /from "[^"]+\.ts"/, "declarations import .js specifiers");
    // No runtime dependency: every import in the package is relative.
    for await (const entry of Deno.readDir(dir)) {
      const text = await Deno.readTextFile(`${dir}/${entry.name}`);
      for (const [, specifier] of text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"/gm)) {
        assert.match(specifier!, /^\.\//, `${entry.name} imports only its siblings`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
