/**
 * The one line start-up prints when it cannot listen: a port another
 * process holds is named as such (with what to do), anything else keeps the
 * runtime's first line under the variable that caused it.
 *
 * @module
 */
import { errorMessage } from "./errors.ts";

/** Whether `err` says the address is taken (Deno's error or the node front door's). */
export function isAddrInUse(err: unknown): boolean {
  return err instanceof Deno.errors.AddrInUse ||
    /EADDRINUSE|address already in use/i.test(errorMessage(err));
}

/**
 * The line (without the `config error: ` prefix) for a listen that failed
 * on `hostname:port`.
 */
export function listenErrorLine(
  err: unknown,
  at: { hostname: string; port: number },
  tls: boolean,
): string {
  if (isAddrInUse(err)) {
    return `PORT: ${at.port} is already in use on ${at.hostname} by another process ` +
      `(is another server running?): stop it, or set PORT to a free port`;
  }
  const what = tls ? "TLS_CERT_FILE/TLS_KEY_FILE" : "PORT";
  return `${what}: ${errorMessage(err).split("\n")[0]}`;
}

/**
 * Tries the port once before launching isolates (`start:parallel`), so that a
 * port in use is one line from the launcher instead of one per isolate (or,
 * under `deno serve`, an isolate that keeps running without listening).
 * Answers the line, or undefined when the port is free (released again).
 */
export function portInUseLine(at: { hostname: string; port: number }): string | undefined {
  if (at.port === 0) return undefined;
  try {
    Deno.listen({ hostname: at.hostname, port: at.port }).close();
    return undefined;
  } catch (err) {
    return isAddrInUse(err) ? listenErrorLine(err, at, false) : undefined;
  }
}
