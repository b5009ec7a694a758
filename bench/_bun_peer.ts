/**
 * The Bun peer's binary. It comes from npm like the Node peers: the
 * `@oven/bun-linux-x64` package (an optional dependency of bench/node, so
 * `npm ci --prefix bench/node` installs it where it runs) ships the `bun`
 * executable. Elsewhere a `bun` on PATH is used; without either, the Bun rows
 * say in one line what is missing (skipped, or failed when `CI` is set: CI
 * never loses a peer silently).
 *
 * @module
 */

const NODE_DIR = new URL("./node/", import.meta.url).pathname;
/** Where `npm ci --prefix bench/node` puts the binary. */
export const BUN_PACKAGE_BIN = `${NODE_DIR}node_modules/@oven/bun-linux-x64/bin/bun`;

async function version(path: string): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(path, {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    })
      .output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

/** A usable Bun: its path and version. */
export interface BunBinary {
  path: string;
  version: string;
}

let found: Promise<BunBinary | string> | undefined;

async function locate(log: (line: string) => void): Promise<BunBinary | string> {
  let v = await version(BUN_PACKAGE_BIN);
  if (v === undefined && Deno.build.os === "linux" && Deno.build.arch === "x86_64") {
    // node_modules predates the Bun dependency: install it from the lock file.
    log("bench/node has no Bun yet: running `npm ci --prefix bench/node` (once)");
    try {
      await new Deno.Command("npm", {
        args: ["ci", "--prefix", NODE_DIR, "--no-audit", "--no-fund"],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).output();
    } catch { /* npm missing: reported below */ }
    v = await version(BUN_PACKAGE_BIN);
  }
  if (v !== undefined) return { path: BUN_PACKAGE_BIN, version: v };
  const onPath = await version("bun");
  if (onPath !== undefined && onPath.startsWith("1.")) return { path: "bun", version: onPath };
  return "Bun 1.x missing: run `npm ci --prefix bench/node` (installs @oven/bun-linux-x64 on " +
    "Linux x64) or put Bun 1.x on PATH";
}

/**
 * Finds Bun once per bench run (installing the npm package when bench/node
 * lacks it).
 *
 * @returns the binary, or one line saying what is missing
 */
export function findBun(log: (line: string) => void = () => {}): Promise<BunBinary | string> {
  found ??= locate(log);
  return found;
}

/** Whether a missing peer must fail the run rather than be skipped (`CI` set). */
export function missingPeerFails(): boolean {
  return (Deno.env.get("CI") ?? "") !== "";
}
