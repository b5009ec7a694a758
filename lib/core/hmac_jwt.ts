/**
 * A synchronous HS256/HS384/HS512 JWT check with `node:crypto`, for the one
 * case where jose's is measurably slow: its HMAC goes through WebCrypto, a
 * promise and a copy per token, about 100 µs of a 400 µs handshake here.
 *
 * It makes exactly the checks jose's `jwtVerify` makes with our options, in
 * the same order and with the same outcome (RFC 8725: the `alg` allow-list,
 * a constant-time signature comparison, then `iss`, `aud`, `iat`, `nbf`,
 * `exp`, with the configured clock tolerance). Anything it does not handle
 * itself — a `crit` header, an `alg` it holds no key for (`none`, RS256,
 * ...) — it leaves to jose by answering `undefined`, so every unusual token
 * still meets jose. `tests/auth_test.ts` runs the attack tests against both.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";
import { AuthError } from "./auth_error.ts";

/** What {@linkcode HmacJwt.verify} checks besides the signature (jose's option names). */
export interface HmacClaimChecks {
  /** Claims that must be present. */
  requiredClaims: readonly string[];
  /** Seconds of leeway for `exp` and `nbf`. */
  clockTolerance: number;
  /** `iss` must equal this, when set. */
  issuer?: string | undefined;
  /** `aud` must name one of these, when set. */
  audience?: string | readonly string[] | undefined;
}

const HASHES: Readonly<Record<string, string>> = Object.freeze({
  HS256: "sha256",
  HS384: "sha384",
  HS512: "sha512",
});

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** jose's `isObject`: a plain object (what JSON.parse gives for `{...}`), not an array. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  if (Object.prototype.toString.call(value) !== "[object Object]") return false;
  const proto = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/** A base64url segment as a JSON object, or undefined when it is not one. */
function jsonObject(segment: string): Record<string, unknown> | undefined {
  if (segment.length % 4 === 1) return undefined;
  try {
    const parsed: unknown = JSON.parse(utf8.decode(Buffer.from(segment, "base64url")));
    return isPlainObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function claimFailed(claim: string, why: string): AuthError {
  // jose reports a bad `iat` or `nbf` as JWTClaimValidationFailed on that claim;
  // auth.ts maps both to not_yet_valid, every other claim to claim_invalid.
  return claim === "nbf" || claim === "iat"
    ? new AuthError("not_yet_valid", `claim ${claim} is in the future`)
    : new AuthError("claim_invalid", `claim ${claim} failed: ${why}`);
}

/** A NumericDate claim: undefined when absent, else it must be a number. */
function numericDate(claims: Record<string, unknown>, claim: string): number | undefined {
  const value = claims[claim];
  if (value === undefined) return undefined;
  if (typeof value !== "number") throw claimFailed(claim, "invalid");
  return value;
}

function audienceMatches(aud: unknown, wanted: readonly string[]): boolean {
  if (typeof aud === "string") return wanted.includes(aud);
  return Array.isArray(aud) && wanted.some((w) => aud.includes(w));
}

/** jose's `validateClaimsSet` for our options: presence, iss, aud, iat, nbf, exp. */
function checkClaims(
  claims: Record<string, unknown>,
  checks: HmacClaimChecks,
  nowSec: number,
): void {
  const { requiredClaims, issuer, audience, clockTolerance } = checks;
  const present = [...requiredClaims];
  if (audience !== undefined) present.push("aud");
  if (issuer !== undefined) present.push("iss");
  for (const claim of new Set(present.reverse())) {
    if (!Object.hasOwn(claims, claim)) throw claimFailed(claim, "missing");
  }
  if (issuer !== undefined && claims.iss !== issuer) throw claimFailed("iss", "check_failed");
  if (audience !== undefined) {
    const wanted = typeof audience === "string" ? [audience] : audience;
    if (!audienceMatches(claims.aud, wanted)) throw claimFailed("aud", "check_failed");
  }
  numericDate(claims, "iat");
  const nbf = numericDate(claims, "nbf");
  if (nbf !== undefined && nbf > nowSec + clockTolerance) throw claimFailed("nbf", "check_failed");
  const exp = numericDate(claims, "exp");
  if (exp !== undefined && exp <= nowSec - clockTolerance) {
    throw new AuthError("expired", "token expired");
  }
}

/**
 * The HS* keys of one verifier (one secret, the allowed HMAC algorithms).
 *
 * @example
 * ```ts
 * import { HmacJwt } from "./hmac_jwt.ts";
 * const hmac = new HmacJwt(new TextEncoder().encode("a-long-random-secret-of-32-chars!!"), ["HS256"]);
 * hmac.verify("a.b.c", { requiredClaims: ["sub"], clockTolerance: 0 }, Date.now()); // undefined: not a JWT it can judge
 * ```
 */
export class HmacJwt {
  readonly #secret: Buffer;
  readonly #hashes: ReadonlyMap<string, string>;

  /** @param secret the shared secret @param algorithms the allowed HS* algorithms */
  constructor(secret: Uint8Array, algorithms: readonly string[]) {
    this.#secret = Buffer.from(secret);
    this.#hashes = new Map(
      algorithms.flatMap((alg) => HASHES[alg] === undefined ? [] : [[alg, HASHES[alg]]]),
    );
  }

  /**
   * The verified claims of a compact JWS `token`, or `undefined` when jose
   * must judge it (not three segments, a header that is not a JSON object, a
   * `crit` header, an `alg` without a key here). Throws {@linkcode AuthError}
   * for a bad signature, payload or claim.
   */
  verify(token: string, checks: HmacClaimChecks, nowMs: number): unknown {
    const dot1 = token.indexOf(".");
    const dot2 = token.indexOf(".", dot1 + 1);
    if (dot1 < 0 || dot2 < 0 || token.indexOf(".", dot2 + 1) >= 0) return undefined;
    const header = jsonObject(token.slice(0, dot1));
    if (header === undefined || header.crit !== undefined) return undefined;
    const hash = typeof header.alg === "string" ? this.#hashes.get(header.alg) : undefined;
    if (hash === undefined) return undefined;
    const signature = token.slice(dot2 + 1);
    if (signature.length % 4 === 1) return undefined;
    const expected = createHmac(hash, this.#secret).update(token.slice(0, dot2)).digest();
    const given = Buffer.from(signature, "base64url");
    // Lengths are public (the algorithm fixes them); the bytes are compared in constant time.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new AuthError("bad_signature", "signature verification failed");
    }
    const claims = jsonObject(token.slice(dot1 + 1, dot2));
    if (claims === undefined) throw new AuthError("malformed", "token is malformed");
    checkClaims(claims, checks, Math.floor(nowMs / 1000));
    return claims;
  }
}
