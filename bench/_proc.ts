/**
 * Reads a server's CPU time and memory from /proc. CPU per delivery taken from
 * the server process itself stays honest when the load generator, not the
 * server, is the bottleneck.
 *
 * @module
 */

/** Kernel clock ticks per second (`getconf CLK_TCK`); 100 on every Linux we run on. */
const CLOCK_TICKS_PER_SEC = 100;

/**
 * User + system CPU time of a whole process (all threads), in microseconds.
 * Resolution is one clock tick (10 ms), so measure windows of ≥ 1 s of CPU.
 */
export async function cpuMicros(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // The command name (field 2) may hold spaces and parentheses; fields are
  // counted from after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new TypeError(`Cannot read CPU time: current value is ${JSON.stringify(stat)}`);
  }
  return ((utime + stime) * 1_000_000) / CLOCK_TICKS_PER_SEC;
}

/** Resident set size of a process, in bytes (VmRSS). */
export async function rssBytes(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match) throw new TypeError(`Cannot read VmRSS of pid ${pid}: current value is missing`);
  return Number(match[1]) * 1024;
}

/** CPU time of this process, in microseconds (for the generator's own share). */
export function selfCpuMicros(): Promise<number> {
  return cpuMicros(Deno.pid);
}

/** Peak resident set size of a process since it started or since {@linkcode resetPeakRss}, in bytes (VmHWM). */
export async function peakRssBytes(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
  if (!match) throw new TypeError(`Cannot read VmHWM of pid ${pid}: current value is missing`);
  return Number(match[1]) * 1024;
}

/**
 * Restarts a process's peak RSS from its current RSS (`5` to
 * /proc/<pid>/clear_refs, Linux ≥ 4.0, own processes only), so that
 * {@linkcode peakRssBytes} measures one phase rather than the process's life.
 * Resolves to false when the kernel refuses; the peak then spans the whole life.
 */
export async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await Deno.writeTextFile(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}
