/**
 * The Node side of the bench (the `ws` and Socket.IO servers and the idle
 * connection generator) needs `bench/node/node_modules`. A fresh clone has
 * none: install it from the lock file with `npm ci`, or say in one line what
 * is missing, so that a new user never sees a table of FAILED rows instead.
 *
 * @module
 */

const NODE_DIR = new URL("./node/", import.meta.url).pathname;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function runs(cmd: string): Promise<boolean> {
  try {
    const out = await new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

/**
 * Makes sure `bench/node/node_modules` exists, running
 * `npm ci --prefix bench/node` when it does not (npm's output is shown only
 * when it fails: stdout carries the bench's table).
 *
 * @returns undefined when the Node peers are ready, else one line saying what
 * is missing and how to fix it
 */
export async function ensureNodePeers(
  log: (line: string) => void,
): Promise<string | undefined> {
  if (await exists(`${NODE_DIR}node_modules`)) return undefined;
  if (!(await runs("node")) || !(await runs("npm"))) {
    return "the bench needs Node.js 18+ and npm on PATH (for the ws and Socket.IO servers and the idle generator); install them and run again";
  }
  log("bench/node/node_modules missing: running `npm ci --prefix bench/node` (once)");
  const out = await new Deno.Command("npm", {
    args: ["ci", "--prefix", NODE_DIR, "--no-audit", "--no-fund"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success || !(await exists(`${NODE_DIR}node_modules`))) {
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    console.error(text.trim().split("\n").slice(-20).join("\n"));
    return `\`npm ci --prefix bench/node\` failed (exit ${out.code}); fix the error above and run again`;
  }
  return undefined;
}
