/**
 * The README's webhook verifiers, run for real: the TypeScript and the
 * Python snippet (extracted from the README as printed) accept a batch the
 * engine signed and delivered, and refuse a tampered body, a wrong secret
 * and a stale `t`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { signBody } from "../lib/webhooks/signature.ts";
import { findOnPath } from "./_process.ts";

const SECRET = "webhook-secret-that-is-long-enough-0123";

/** The code block that follows `<!-- marker … -->` in the README. */
async function snippet(marker: string): Promise<string> {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const at = readme.indexOf(`<!-- ${marker}`);
  assert.notEqual(at, -1, `README has no ${marker} block`);
  const block = readme.slice(at).match(/```\w+\n([\s\S]*?)```/);
  assert.ok(block?.[1], `no code block after ${marker}`);
  return block[1];
}

/** Cases as [header, body, secret, expected]. */
function cases(): [string, string, string, boolean][] {
  const body = JSON.stringify({ id: "b", time_ms: Date.now(), events: [{ id: "e", name: "x" }] });
  const now = Date.now();
  return [
    [signBody(SECRET, body, now), body, SECRET, true],
    [signBody(SECRET, body, now), body.replace('"x"', '"y"'), SECRET, false],
    [signBody(SECRET, body, now), body, "another-secret-that-is-long-enough", false],
    [signBody(SECRET, body, now - 301_000), body, SECRET, false],
    ["t=abc,v1=00", body, SECRET, false],
    ["", body, SECRET, false],
  ];
}

Deno.test("README: the TypeScript webhook verifier accepts our signature and refuses forgeries", async () => {
  const dir = await Deno.makeTempDir({ prefix: "verifier-ts-" });
  try {
    const file = `${dir}/verify.ts`;
    await Deno.writeTextFile(file, await snippet("webhook-verifier-ts"));
    const { verify } = await import(`file://${file}`) as {
      verify(secret: string, header: string | null, body: string): boolean;
    };
    for (const [header, body, secret, expected] of cases()) {
      assert.equal(verify(secret, header, body), expected, `${header} ${secret}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const python = findOnPath("python3");

Deno.test({
  name: "README: the Python webhook verifier accepts our signature and refuses forgeries",
  ignore: python === undefined,
  async fn() {
    const program = `${await snippet("webhook-verifier-py")}
import json, sys
for header, body, secret, expected in json.load(sys.stdin):
    got = verify(secret, header, body.encode())
    print("ok" if got == expected else f"MISMATCH {header} {secret} {got}")
`;
    const child = new Deno.Command(python!, {
      args: ["-c", program],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify(cases())));
    await writer.close();
    const { code, stdout, stderr } = await child.output();
    const out = new TextDecoder().decode(stdout).trim().split("\n");
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.deepEqual(out, cases().map(() => "ok"));
  },
});
