/**
 * Minting the tokens clients connect with, signed by `jose`: HMAC
 * (`HS256/384/512`, the server's `JWT_SECRET`), RSA (`RS*`, `PS*`) and
 * ECDSA (`ES256/384/512`) with a private key whose public half the server
 * knows (`JWT_PUBLIC_KEY` or `JWKS_URL`). The claims are the server's:
 * `sub`, `rooms`, `rooms_readonly`, `roles`, `info`, `jti`, `exp`, `iss`, `aud`.
 *
 * @module
 */
import { importJWK, importPKCS8, type JWK, SignJWT } from "jose";

/** The algorithms the server verifies. */
export type TokenAlgorithm =
  | "HS256"
  | "HS384"
  | "HS512"
  | "RS256"
  | "RS384"
  | "RS512"
  | "PS256"
  | "PS384"
  | "PS512"
  | "ES256"
  | "ES384"
  | "ES512";

/** A key `jose` signs with: a `CryptoKey`, a Node `KeyObject`, a JWK, or secret bytes. */
export type JoseSigningKey = Parameters<SignJWT["sign"]>[0];

/**
 * What signs: for `HS*` the shared secret (a string of at least 32
 * characters, or bytes); for the others a private key as PKCS#8 PEM text, a
 * private JWK, a `CryptoKey` or a Node `KeyObject`.
 */
export type SigningKey = string | JoseSigningKey;

/** Claims and settings of one token. */
export interface MintTokenOptions {
  /** The user id (`sub`). */
  sub: string;
  /** Room patterns granting join and publish (`rooms`), e.g. `["chat:*", "user:{sub}"]`. */
  rooms?: readonly string[];
  /** Room patterns granting join only (`rooms_readonly`). */
  roomsReadonly?: readonly string[];
  /** Roles (`roles`), e.g. the server's `ADMIN_ROLE`. */
  roles?: readonly string[];
  /** What presence shows about the user (`info`): a JSON object. */
  info?: Record<string, unknown>;
  /** Token id (`jti`): the handle for revoking this one token. */
  jti?: string;
  /** Lifetime in seconds. @default 3600 */
  ttlSec?: number;
  /** @default "HS256" */
  alg?: TokenAlgorithm;
  /** `iss`, when the server checks `JWT_ISSUER`. */
  issuer?: string;
  /** `aud`, when the server checks `JWT_AUDIENCE`. */
  audience?: string;
  /** `kid` header, to pick a key from the server's JWKS. */
  kid?: string;
  /** `iat` in seconds since the epoch. @default now */
  issuedAt?: number;
}

async function keyFor(key: SigningKey, alg: TokenAlgorithm): Promise<JoseSigningKey> {
  if (alg.startsWith("HS")) {
    if (typeof key === "string") {
      if (key.length < 32) {
        throw new RangeError(
          `Cannot mint a token: an HMAC secret needs at least 32 characters, current length is ${key.length}`,
        );
      }
      return new TextEncoder().encode(key);
    }
    if (key instanceof Uint8Array) return key;
    throw new TypeError(
      `Cannot mint a token: ${alg} needs a secret string or bytes`,
    );
  }
  if (typeof key === "string") return await importPKCS8(key, alg);
  if (key instanceof Uint8Array) {
    throw new TypeError(
      `Cannot mint a token: ${alg} needs a private key, not secret bytes`,
    );
  }
  if ("kty" in key) {
    const imported = await importJWK(key as JWK, alg);
    if (imported instanceof Uint8Array) {
      throw new TypeError(
        `Cannot mint a token: ${alg} needs an RSA or EC private JWK`,
      );
    }
    return imported;
  }
  return key;
}

/**
 * Signs a token for a client (after your own login), e.g. from an endpoint
 * the browser's `token` function calls.
 *
 * @example
 * ```ts ignore
 * import { mintToken } from "@realtime/server-sdk";
 * const token = await mintToken(process.env.JWT_SECRET!, {
 *   sub: user.id, rooms: ["chat:*", "user:{sub}"], info: { name: user.name }, ttlSec: 900,
 * });
 * ```
 *
 * @param key the HMAC secret or private key; see {@linkcode SigningKey}
 * @param options claims and settings
 * @returns the compact JWT
 * @throws {TypeError} for a key that does not fit `alg`, or an empty `sub`
 * @throws {RangeError} for an HMAC secret under 32 characters or a bad `ttlSec`
 */
export async function mintToken(
  key: SigningKey,
  options: MintTokenOptions,
): Promise<string> {
  const {
    sub,
    rooms = [],
    roomsReadonly = [],
    roles = [],
    ttlSec = 3600,
    alg = "HS256",
  } = options;
  if (typeof sub !== "string" || sub === "") {
    throw new TypeError(
      `Cannot mint a token: sub must be a non-empty string, current value is ${
        JSON.stringify(sub)
      }`,
    );
  }
  if (!Number.isInteger(ttlSec) || ttlSec <= 0) {
    throw new RangeError(
      `Cannot mint a token: ttlSec must be a positive integer, current value is ${ttlSec}`,
    );
  }
  const claims: Record<string, unknown> = {};
  if (rooms.length > 0) claims.rooms = [...rooms];
  if (roomsReadonly.length > 0) claims.rooms_readonly = [...roomsReadonly];
  if (roles.length > 0) claims.roles = [...roles];
  if (options.info !== undefined) claims.info = options.info;
  let jwt = new SignJWT(claims)
    .setProtectedHeader({
      alg,
      typ: "JWT",
      ...(options.kid === undefined ? {} : { kid: options.kid }),
    })
    .setSubject(sub)
    .setIssuedAt(options.issuedAt)
    .setExpirationTime(
      (options.issuedAt ?? Math.floor(Date.now() / 1000)) + ttlSec,
    );
  if (options.issuer !== undefined) jwt = jwt.setIssuer(options.issuer);
  if (options.audience !== undefined) jwt = jwt.setAudience(options.audience);
  if (options.jti !== undefined) jwt = jwt.setJti(options.jti);
  return await jwt.sign(await keyFor(key, alg));
}
