/**
 * Start-up check of `KV_PATH`: a Deno KV file this process may not write is
 * a permission error that never heals, so it stops start-up with one line
 * naming the variable and what to do, instead of a server that stays
 * `degraded` or Deno's own hint about a flag `deno task start` cannot take.
 *
 * @module
 */
import type { Config } from "./config.ts";

/** Whether any part of the server opens the KV database. */
export function usesKv(config: Pick<Config, "bus" | "store" | "history">): boolean {
  return config.bus.kind === "kv" || config.store.kind === "kv" || config.history.store === "kv";
}

/**
 * The one-line problem with `KV_PATH` for this process, or undefined when
 * it can be opened (or no KV is used, or it is `:memory:` or Deploy's). The
 * file's directory is created here when allowed, as the store would.
 */
export async function kvPathProblem(
  config: Pick<Config, "bus" | "store" | "history">,
): Promise<string | undefined> {
  const path = config.store.kv.path;
  if (!usesKv(config) || path === undefined || path === ":memory:") return undefined;
  const slash = path.lastIndexOf("/");
  const dir = slash > 0 ? path.slice(0, slash) : ".";
  const fix = `set KV_PATH to a file under ./data (deno task start may write only there), ` +
    `or run main.ts with --allow-write=${dir}`;
  for (const name of ["read", "write"] as const) {
    const { state } = await Deno.permissions.query({ name, path });
    if (state !== "granted") {
      return `KV_PATH: this process may not ${name} ${path}: ${fix}`;
    }
  }
  try {
    await Deno.mkdir(dir, { recursive: true });
    const probe = `${dir}/.kv_write_probe_${crypto.randomUUID()}`;
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
  } catch (err) {
    if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
      return `KV_PATH: cannot write in ${dir} (the file system refuses): make it writable by ` +
        `this user, or set KV_PATH to a file in a writable directory`;
    }
    throw err;
  }
  return undefined;
}
