/**
 * How many TCP connections one isolate may hold: the process's open-file
 * limit, less a reserve for everything else the process opens (KV files,
 * Redis connections, logs, the runtime's own descriptors), shared by the
 * isolates of the process (`start:parallel` runs them all in one).
 *
 * Deno's accept loop ends the process when `accept` fails with EMFILE
 * (docs/upstream/deno-serve-emfile.md), so the front door must refuse
 * connections before the kernel does.
 *
 * @module
 */

/** File descriptors kept for everything that is not a client connection. */
export function reservedDescriptors(limit: number): number {
  return 64 + Math.ceil(limit * 0.05);
}

/**
 * The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits`
 * (Linux); `undefined` where that cannot be read (another OS, no read
 * permission), and then the caller's own cap stands alone.
 */
export function openFileLimit(
  read: (path: string) => string = Deno.readTextFileSync,
): number | undefined {
  let text: string;
  try {
    text = read("/proc/self/limits");
  } catch {
    return undefined;
  }
  const line = text.split("\n").find((l) => l.startsWith("Max open files"));
  const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
  if (soft === undefined || soft === "unlimited") return undefined;
  const value = Number(soft);
  return Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

/** What {@linkcode socketBudget} decided, and why, for the start-up log. */
export interface SocketBudget {
  /** Most TCP connections this isolate holds at once. */
  maxSockets: number;
  /** The process's open-file limit, if known. */
  fdLimit: number | undefined;
}

/**
 * The socket cap of one isolate out of `isolates`: the fd limit less the
 * reserve, split evenly, and never above `ceiling` (a WebSocket or a
 * request each hold one socket, so `ceiling` is `MAX_CONNECTIONS` plus room
 * for HTTP requests).
 */
export function socketBudget(
  ceiling: number,
  isolates: number,
  fdLimit: number | undefined = openFileLimit(),
): SocketBudget {
  if (fdLimit === undefined) return { maxSockets: ceiling, fdLimit };
  const usable = Math.floor((fdLimit - reservedDescriptors(fdLimit)) / Math.max(1, isolates));
  return { maxSockets: Math.max(1, Math.min(ceiling, usable)), fdLimit };
}
