/**
 * The README's `curl` examples for the HTTP APIs (`POST /api/publish`,
 * `/api/revoke`, the admin feed, health), run as written with the system
 * `curl` against a real server: every call must succeed (2xx), and where the
 * README shows the answer in a `# {…}` comment, the answer has the same
 * fields and values (times aside).
 *
 * @module
 */
import assert from "node:assert/strict";
import { connectAs, join, startServer } from "./_helpers.ts";
import { findOnPath } from "./_process.ts";

const API_KEY = "readme-curl-api-key-0123456789abcdef";
const README = new URL("../README.md", import.meta.url);

/** One command of a snippet and the answer the README shows after it, if any. */
interface Step {
  command: string;
  shown?: Record<string, unknown>;
}

/** The `sh` blocks that call the APIs with `$API_KEY`, as steps. */
function apiSnippets(markdown: string): Step[][] {
  const blocks = [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks.filter((b) => /^curl /m.test(b) && b.includes("$API_KEY")).map((block) => {
    const lines = block.replaceAll("\\\n", " ").split("\n");
    const steps: Step[] = [];
    for (const line of lines) {
      if (line.startsWith("curl ")) steps.push({ command: line });
      const shown = /^# (\{.*\})$/.exec(line)?.[1];
      const last = steps.at(-1);
      if (shown !== undefined && last !== undefined) last.shown = JSON.parse(shown);
    }
    return steps;
  });
}

const curl = findOnPath("curl");

Deno.test({
  name: "README: the curl snippets of the HTTP APIs run as written",
  ignore: curl === undefined && Deno.env.get("CI") === undefined,
  async fn() {
    const snippets = apiSnippets(await Deno.readTextFile(README));
    // Publish (with the idempotent retry) and revoke: a lost block would go unnoticed.
    assert.ok(snippets.length >= 2, `found ${snippets.length} API snippets`);
    const commands = snippets.flat().map((s) => s.command).join("\n");
    assert.match(commands, /\/api\/publish/);
    assert.match(commands, /\/api\/revoke/);

    await using ts = await startServer({ API_KEY });
    // The answers shown: two members in lobby, and alice with two connections.
    const members = [await connectAs(ts, "bob"), await connectAs(ts, "carol")];
    for (const m of members) await join(m, "lobby");
    const alice = [await connectAs(ts, "alice"), await connectAs(ts, "alice")];
    for (const step of snippets.flat()) {
      const command = step.command.replaceAll("http://localhost:8000", ts.httpUrl);
      const out = await new Deno.Command("bash", {
        args: ["-c", `curl() { command curl --fail-with-body -sS "$@"; }\n${command}`],
        env: { API_KEY },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, `${step.command}\n→ ${stdout}${stderr}`);
      if (step.shown === undefined) continue;
      const got = JSON.parse(stdout) as Record<string, unknown>;
      assert.deepEqual(Object.keys(got).sort(), Object.keys(step.shown).sort(), step.command);
      for (const [key, value] of Object.entries(step.shown)) {
        if (key !== "until") assert.deepEqual(got[key], value, `${step.command}: ${key}`);
      }
    }
    for (const c of [...members, ...alice]) await c.close();
  },
});
