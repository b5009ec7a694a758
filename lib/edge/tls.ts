/**
 * TLS material for the server's own listener (`TLS_CERT_FILE`,
 * `TLS_KEY_FILE`), read and checked once at start-up so that a wrong path or
 * file stops the server with one line naming it, and the warning for a
 * production server that would carry tokens in clear.
 *
 * @module
 */
import { ConfigError } from "../config.ts";
import type { Config } from "../config.ts";
import { errorMessage } from "../errors.ts";

/** PEM text for `Deno.serve`'s `cert` and `key`. */
export interface TlsMaterial {
  /** The certificate chain, PEM. */
  cert: string;
  /** The private key, PEM. */
  key: string;
}

async function readPem(variable: string, path: string, block: RegExp, what: string) {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "no such file"
      : err instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : err instanceof Deno.errors.IsADirectory
      ? "is a directory"
      : errorMessage(err).split("\n")[0];
    throw new ConfigError(variable, `cannot read ${path}: ${why}`);
  }
  if (!block.test(text)) {
    throw new ConfigError(
      variable,
      `${path} is not a PEM ${what} (no "-----BEGIN ${what.toUpperCase()}" block)`,
    );
  }
  return text;
}

/**
 * Reads the configured certificate and key files.
 *
 * @returns undefined when TLS is not configured
 * @throws {ConfigError} naming `TLS_CERT_FILE` or `TLS_KEY_FILE` when a file cannot be read or holds no PEM block of its kind
 */
export async function readTlsFiles(config: Pick<Config, "tls">): Promise<TlsMaterial | undefined> {
  if (config.tls === undefined) return undefined;
  const cert = await readPem(
    "TLS_CERT_FILE",
    config.tls.certFile,
    /-----BEGIN CERTIFICATE-----/,
    "certificate",
  );
  const key = await readPem(
    "TLS_KEY_FILE",
    config.tls.keyFile,
    /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/,
    "private key",
  );
  return { cert, key };
}

/**
 * The start-up warning for `DENO_ENV=production` on a plain listener with no
 * trusted proxy in front (tokens in clear), or undefined when there is none to give.
 */
export function plaintextWarning(
  config: { server: Pick<Config["server"], "plaintextInProduction"> },
): string | undefined {
  if (!config.server.plaintextInProduction) return undefined;
  return [
    "",
    "!!! WARNING: DENO_ENV=production, but this server speaks plain HTTP/ws:// and no proxy is",
    "!!! declared (TRUST_PROXY=1). Tokens travel in the handshake IN CLEAR: anyone on the path can",
    "!!! read and replay them. Set TLS_CERT_FILE and TLS_KEY_FILE, or put a TLS proxy in front and",
    '!!! set TRUST_PROXY=1 (see "Behind a proxy" in the README).',
    "",
  ].join("\n");
}
