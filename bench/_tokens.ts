/**
 * Mints the JWTs the generator presents to ours. Bare servers ignore them, but
 * every server gets a token in its URL so the bytes on the wire are the same.
 *
 * @module
 */
import { type CryptoKey, exportSPKI, generateKeyPair, SignJWT } from "jose";

/** HS256 secret handed to ours as JWT_SECRET (≥ 32 characters, as ours requires). */
export const BENCH_HS256_SECRET = "bench-only-secret-not-for-production-0123456789";

/** API_KEY handed to ours where the bench publishes through `POST /api/publish` (≥ 32 characters). */
export const BENCH_API_KEY = "bench-only-api-key-not-for-production-0123456789";

/** An ES256 key pair: the private key signs here, the PEM goes to ours as JWT_PUBLIC_KEY. */
export interface Es256Keys {
  privateKey: CryptoKey;
  publicKeyPem: string;
}

/** Generates a fresh ES256 key pair for one bench run. */
export async function generateEs256Keys(): Promise<Es256Keys> {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  return { privateKey, publicKeyPem: await exportSPKI(publicKey) };
}

/** Options for {@linkcode mintTokens}. */
export interface MintOptions {
  /** `HS256` signs with {@linkcode BENCH_HS256_SECRET}; `ES256` needs `es256`. */
  alg: "HS256" | "ES256";
  /** Key pair for ES256. */
  es256?: Es256Keys;
  /** Prefix of each `sub`; distinct prefixes give tokens no cache has seen. */
  subPrefix: string;
  /** @default 3600 */
  ttlSec?: number;
}

/**
 * Mints `count` tokens with claims `{sub, rooms: ["*"], exp}`, one user each.
 *
 * @example
 * ```ts
 * import { mintTokens } from "./_tokens.ts";
 * const [token] = await mintTokens(1, { alg: "HS256", subPrefix: "u" });
 * ```
 */
export async function mintTokens(count: number, options: MintOptions): Promise<string[]> {
  const { alg, es256, subPrefix, ttlSec = 3600 } = options;
  const key = alg === "HS256" ? new TextEncoder().encode(BENCH_HS256_SECRET) : es256?.privateKey;
  if (!key) throw new TypeError("Cannot mint ES256 tokens: current value of es256 is undefined");
  const exp = Math.floor(Date.now() / 1000) + ttlSec;
  const tokens: string[] = new Array(count);
  // Bounded parallelism: WebCrypto signs off the main thread, but a million
  // pending promises would only cost memory.
  const chunk = 256;
  for (let start = 0; start < count; start += chunk) {
    const end = Math.min(count, start + chunk);
    const batch = [];
    for (let i = start; i < end; i++) {
      batch.push(
        new SignJWT({ rooms: ["*"] })
          .setProtectedHeader({ alg, typ: "JWT" })
          .setSubject(`${subPrefix}-${i}`)
          .setExpirationTime(exp)
          .sign(key),
      );
    }
    const signed = await Promise.all(batch);
    for (let i = 0; i < signed.length; i++) tokens[start + i] = signed[i]!;
  }
  return tokens;
}
