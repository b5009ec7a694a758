/**
 * Token verification: a JWT in, a {@linkcode Principal} out, or an
 * {@linkcode AuthError} with the precise reason (for the audit log only).
 *
 * The verifier is an interface so that applications can plug in their own
 * (opaque session tokens, an introspection endpoint); the default is jose.
 *
 * @module
 */
import { createHash } from "node:crypto";
import * as jose from "jose";
import { z } from "zod";
import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import type { JwtAlgorithm, JwtConfig } from "../config.ts";
import { ConfigError, isHmacAlgorithm } from "../config.ts";
import { AuthError } from "./auth_error.ts";
import { type HmacClaimChecks, HmacJwt } from "./hmac_jwt.ts";
import {
  DEFAULT_MAX_PAYLOAD_DEPTH,
  type JsonValue,
  MAX_TOKEN_LENGTH,
  relayProblem,
  utf8ByteLength,
} from "../protocols/native/protocol.ts";

export { AuthError };

/** Who a connection is, as established by its token. */
export interface Principal {
  /** The token's `sub`. */
  userId: string;
  /** The token's `exp` in seconds since the epoch, or null when it has none. */
  expiresAt: number | null;
  /** Room patterns granting join and publish (`rooms` claim). */
  rooms: readonly string[];
  /** Room patterns granting join only (`rooms_readonly` claim). */
  roomsReadonly: readonly string[];
  /** Roles (`roles` claim), used for the admin role of the publish API. */
  roles: readonly string[];
  /**
   * The token's `iat` in seconds, when it has one: a user's revocation
   * concerns the tokens issued at or before it (no `iat` counts as before).
   */
  iat?: number;
  /** The token's `jti`, when it has one: the handle for revoking this one token. */
  jti?: string;
  /** What presence shows about the user to others (`info` claim), when the token has one. */
  info?: PresenceInfo;
}

/** Largest `info` claim, serialized, in bytes. */
export const MAX_INFO_BYTES = 1024;

/** A user's presence `info`: a JSON object from the token. */
export type PresenceInfo = { [key: string]: JsonValue };

/**
 * The `info` claim: a JSON object of at most {@linkcode MAX_INFO_BYTES}
 * serialized; `null` counts as absent.
 */
export const InfoClaim = z.custom<PresenceInfo | null>(
  (v) =>
    v === null || (typeof v === "object" && !Array.isArray(v) &&
      utf8ByteLength(JSON.stringify(v)) <= MAX_INFO_BYTES),
  `info must be a JSON object of at most ${MAX_INFO_BYTES} bytes`,
);

/** Turns a token into a principal. Implementations throw {@linkcode AuthError}. */
export interface TokenVerifier {
  /** Verifies `token` and returns who it names. */
  verify(token: string): Promise<Principal>;
}

const MAX_PATTERNS = 256;
const Pattern = z.string().min(1).max(256);

/** The claims we read, beyond what jose checks. */
export const Claims = z.object({
  sub: z.string().min(1).max(256),
  exp: z.number().optional(),
  iat: z.number().optional(),
  // Read, never enforced: a token is not refused for an odd `jti`; one that is
  // not a string of 1–256 characters just cannot be revoked by its id.
  jti: z.string().min(1).max(256).optional().catch(undefined),
  rooms: z.array(Pattern).max(MAX_PATTERNS).optional(),
  rooms_readonly: z.array(Pattern).max(MAX_PATTERNS).optional(),
  roles: z.union([z.string().transform((r) => [r]), z.array(z.string().max(256)).max(64)])
    .optional(),
  info: InfoClaim.optional(),
});

/** Options for {@linkcode principalFromClaims}. */
export interface ClaimsOptions {
  /**
   * Deepest nesting of the `info` claim (the object itself is one level):
   * presence relays it to every member, so it gets the payload limit.
   *
   * @default {DEFAULT_MAX_PAYLOAD_DEPTH}
   */
  maxInfoDepth?: number;
}

/**
 * Builds a principal from claims that jose already verified. An `info` claim
 * that client frames could not carry (a `__proto__` key, nesting past
 * `maxInfoDepth`) refuses the token with `bad_claims`, like an oversized one.
 */
export function principalFromClaims(payload: unknown, options: ClaimsOptions = {}): Principal {
  const { maxInfoDepth = DEFAULT_MAX_PAYLOAD_DEPTH } = options;
  const result = Claims.safeParse(payload);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new AuthError(
      issue?.path[0] === "info" ? "bad_claims" : "claim_invalid",
      `claim ${String(issue?.path[0] ?? "?")} is invalid: ${issue?.message ?? ""}`,
    );
  }
  const c = result.data;
  const principal: Principal = {
    userId: c.sub,
    expiresAt: c.exp ?? null,
    rooms: c.rooms ?? [],
    roomsReadonly: c.rooms_readonly ?? [],
    roles: c.roles ?? [],
  };
  if (c.iat !== undefined) principal.iat = c.iat;
  if (c.jti !== undefined) principal.jti = c.jti;
  if (c.info !== undefined && c.info !== null) {
    const problem = relayProblem(c.info, maxInfoDepth);
    if (problem !== undefined) throw new AuthError("bad_claims", `claim info ${problem}`);
    principal.info = c.info;
  }
  return principal;
}

const JWS_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function mapJoseError(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  const cause = { cause: err };
  if (err instanceof jose.errors.JWTExpired) {
    return new AuthError("expired", "token expired", cause);
  }
  if (err instanceof jose.errors.JWTClaimValidationFailed) {
    if (err.claim === "nbf" || err.claim === "iat") {
      return new AuthError("not_yet_valid", `claim ${err.claim} is in the future`, cause);
    }
    return new AuthError("claim_invalid", `claim ${err.claim} failed: ${err.reason}`, cause);
  }
  if (err instanceof jose.errors.JWSSignatureVerificationFailed) {
    return new AuthError("bad_signature", "signature verification failed", cause);
  }
  if (err instanceof jose.errors.JOSEAlgNotAllowed) {
    return new AuthError("alg_not_allowed", "token algorithm is not allowed", cause);
  }
  if (err instanceof jose.errors.JWKSNoMatchingKey) {
    return new AuthError("unknown_key", "no key in the key set matches the token", cause);
  }
  if (err instanceof jose.errors.JWKSTimeout || err instanceof jose.errors.JWKSInvalid) {
    return new AuthError("key_unavailable", "the key set could not be fetched", cause);
  }
  if (err instanceof TypeError && /fetch|network|connect/i.test(err.message)) {
    return new AuthError("key_unavailable", "the key set could not be fetched", cause);
  }
  return new AuthError("malformed", "token is malformed", cause);
}

type KeyResolver = jose.JWTVerifyGetKey | CryptoKey;

async function hmacKeys(
  secret: Uint8Array,
  algorithms: readonly JwtAlgorithm[],
): Promise<Map<string, CryptoKey>> {
  // Importing once per algorithm makes HS256 verification twice as fast as
  // handing jose the raw bytes, which it re-imports on every call.
  const keys = new Map<string, CryptoKey>();
  for (const alg of algorithms) {
    const hash = `SHA-${alg.slice(2)}`;
    keys.set(
      alg,
      await crypto.subtle.importKey("raw", secret as BufferSource, { name: "HMAC", hash }, false, [
        "verify",
      ]),
    );
  }
  return keys;
}

async function publicKeys(
  material: string,
  algorithms: readonly JwtAlgorithm[],
  explicit: boolean,
): Promise<Map<string, CryptoKey>> {
  const text = material.trim().replaceAll("\\n", "\n");
  if (/PRIVATE KEY/.test(text)) {
    throw new ConfigError("JWT_PUBLIC_KEY", "is a private key: give the public key only");
  }
  let jwk: jose.JWK | undefined;
  if (text.startsWith("{")) {
    try {
      jwk = JSON.parse(text) as jose.JWK;
    } catch {
      throw new ConfigError("JWT_PUBLIC_KEY", "looks like a JWK but is not valid JSON");
    }
    if (typeof jwk !== "object" || jwk === null || "d" in jwk || "k" in jwk) {
      throw new ConfigError(
        "JWT_PUBLIC_KEY",
        "must be a public JWK (no private or symmetric parts)",
      );
    }
  } else if (!text.includes("-----BEGIN PUBLIC KEY-----")) {
    throw new ConfigError("JWT_PUBLIC_KEY", "must be a PEM (SPKI) public key or a public JWK");
  }
  const keys = new Map<string, CryptoKey>();
  const misfits: string[] = [];
  for (const alg of algorithms) {
    try {
      const key = jwk ? await jose.importJWK(jwk, alg) : await jose.importSPKI(text, alg);
      if (!(key instanceof CryptoKey)) throw new TypeError("not a public key");
      keys.set(alg, key);
    } catch {
      misfits.push(alg);
    }
  }
  if (keys.size === 0) {
    throw new ConfigError(
      "JWT_PUBLIC_KEY",
      `fits none of the algorithms ${
        algorithms.join(", ")
      }; set JWT_ALGORITHMS to the key's algorithm`,
    );
  }
  if (explicit && misfits.length > 0) {
    throw new ConfigError("JWT_ALGORITHMS", `${misfits.join(", ")} do not fit JWT_PUBLIC_KEY`);
  }
  return keys;
}

/** Options for {@linkcode createJwtVerifier}. */
export interface JwtVerifierOptions {
  /** Time source for `exp`/`nbf` checks. @default systemClock */
  clock?: Clock;
  /** Secret for dev mode, when the config has no key. */
  devSecret?: Uint8Array;
  /**
   * Least time between two fetches of a JWKS URL, so tokens with made-up
   * `kid`s cannot make us hammer the identity provider. @default 30_000
   */
  jwksCooldownMs?: number;
  /**
   * Deepest nesting of the `info` claim (`MAX_PAYLOAD_DEPTH`).
   *
   * @default {DEFAULT_MAX_PAYLOAD_DEPTH}
   */
  maxInfoDepth?: number;
  /**
   * Who checks HS256/384/512 tokens: `node`, a synchronous `node:crypto`
   * HMAC making jose's checks (`hmac_jwt.ts`; jose still judges any token it
   * does not handle), or `jose` alone. Other algorithms are always jose's.
   *
   * @default "node"
   */
  hmac?: "node" | "jose";
}

/**
 * Builds the jose-backed verifier from the `auth.jwt` section of the config. Keys
 * are imported once here; a key that does not fit is a {@linkcode ConfigError}.
 *
 * @example
 * ```ts
 * import { createJwtVerifier } from "./auth.ts";
 * import { loadConfig } from "../config.ts";
 * const { auth: { jwt } } = loadConfig({ JWT_SECRET: "a-long-random-secret-of-32-chars!!" });
 * const verifier = await createJwtVerifier(jwt);
 * ```
 */
export async function createJwtVerifier(
  jwt: JwtConfig,
  options: JwtVerifierOptions = {},
): Promise<TokenVerifier> {
  const {
    clock = systemClock,
    devSecret,
    jwksCooldownMs = 30_000,
    maxInfoDepth = DEFAULT_MAX_PAYLOAD_DEPTH,
    hmac = "node",
  } = options;
  const claimsOptions = { maxInfoDepth };
  const { key: source, algorithms } = jwt;
  let resolver: KeyResolver;
  let allowed: string[] = [...algorithms];
  let fast: HmacJwt | undefined;
  if (source.kind === "secret" || source.kind === "dev") {
    const secret = source.kind === "secret" ? new TextEncoder().encode(source.secret) : devSecret;
    if (!secret) throw new ConfigError("JWT_SECRET", "is required (or run in dev mode)");
    const keys = await hmacKeys(secret, algorithms.filter(isHmacAlgorithm));
    resolver = byAlgorithm(keys);
    if (hmac === "node") fast = new HmacJwt(secret, [...keys.keys()]);
  } else if (source.kind === "publicKey") {
    const keys = await publicKeys(source.key, algorithms, jwt.algorithmsExplicit);
    allowed = [...keys.keys()];
    resolver = byAlgorithm(keys);
  } else {
    resolver = jose.createRemoteJWKSet(new URL(source.url), {
      cooldownDuration: jwksCooldownMs,
      cacheMaxAge: 600_000,
      timeoutDuration: 5_000,
    });
  }
  const requiredClaims = jwt.requireExp ? ["sub", "exp"] : ["sub"];
  const checks: HmacClaimChecks = Object.freeze({
    requiredClaims,
    clockTolerance: jwt.clockToleranceSec,
    issuer: jwt.issuer,
    audience: jwt.audience,
  });
  return {
    async verify(token: string): Promise<Principal> {
      if (token.length > MAX_TOKEN_LENGTH) {
        throw new AuthError("too_long", `token is longer than ${MAX_TOKEN_LENGTH} characters`);
      }
      if (!JWS_SHAPE.test(token)) throw new AuthError("malformed", "token is not a compact JWS");
      try {
        const claims = fast?.verify(token, checks, clock.now());
        if (claims !== undefined) return principalFromClaims(claims, claimsOptions);
        const verifyOptions: jose.JWTVerifyOptions = {
          algorithms: allowed,
          requiredClaims,
          clockTolerance: jwt.clockToleranceSec,
          currentDate: new Date(clock.now()),
        };
        if (jwt.issuer !== undefined) verifyOptions.issuer = jwt.issuer;
        if (jwt.audience !== undefined) verifyOptions.audience = jwt.audience;
        const { payload } = resolver instanceof CryptoKey
          ? await jose.jwtVerify(token, resolver, verifyOptions)
          : await jose.jwtVerify(token, resolver, verifyOptions);
        return principalFromClaims(payload, claimsOptions);
      } catch (err) {
        throw mapJoseError(err);
      }
    },
  };
}

function byAlgorithm(keys: Map<string, CryptoKey>): jose.JWTVerifyGetKey {
  return (header) => {
    const key = header.alg === undefined ? undefined : keys.get(header.alg);
    if (!key) throw new jose.errors.JOSEAlgNotAllowed("token algorithm is not allowed");
    return key;
  };
}

/** Options for {@linkcode withVerifiedTokenCache}. */
export interface VerifiedTokenCacheOptions {
  /** Most tokens remembered. @default 10_000 */
  maxEntries?: number;
  /** Longest a verified token is trusted without a new check, in ms. @default 300_000 */
  maxAgeMs?: number;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * Wraps a verifier with a bounded cache of tokens it already accepted, so a
 * reconnect storm after a deploy (every client back with the token it had)
 * does not pay a full signature check per client — ES256 verifies only about
 * 800 tokens/s under Deno. Keys are SHA-256 hashes, never the tokens; an entry
 * is never used past the token's `exp` nor past `maxAgeMs` (so a rotated key
 * stops being trusted within that time). Failures are not cached.
 */
export function withVerifiedTokenCache(
  inner: TokenVerifier,
  options: VerifiedTokenCacheOptions = {},
): TokenVerifier & { readonly size: number } {
  const { maxEntries = 10_000, maxAgeMs = 300_000, clock = systemClock } = options;
  const cache = new Map<string, { principal: Principal; validUntil: number }>();
  return {
    get size() {
      return cache.size;
    },
    async verify(token: string): Promise<Principal> {
      if (token.length > MAX_TOKEN_LENGTH) return inner.verify(token);
      // Synchronous node:crypto: WebCrypto's digest costs a promise and a
      // copy, about half as much as the HS256 check it stands in for.
      const key = createHash("sha256").update(token).digest("base64");
      const now = clock.now();
      const hit = cache.get(key);
      if (hit) {
        cache.delete(key);
        if (hit.validUntil > now) {
          cache.set(key, hit); // most recently used goes last
          return hit.principal;
        }
      }
      const principal = await inner.verify(token);
      const expMs = principal.expiresAt === null ? Infinity : principal.expiresAt * 1000;
      const validUntil = Math.min(expMs, now + maxAgeMs);
      if (validUntil > now) {
        if (cache.size >= maxEntries) {
          const oldest = cache.keys().next().value;
          if (oldest !== undefined) cache.delete(oldest);
        }
        cache.set(key, { principal, validUntil });
      }
      return principal;
    },
  };
}
