import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHmac } from "node:crypto";
import * as jose from "jose";
import { AuthError, createJwtVerifier, withVerifiedTokenCache } from "../lib/core/auth.ts";
import type { TokenVerifier } from "../lib/core/auth.ts";
import { ConfigError, loadConfig } from "../lib/config.ts";
import { FakeClock, rawHandshake, SECRET, SECRET_BYTES, startServer, token } from "./_helpers.ts";

const b64 = (v: unknown) =>
  btoa(JSON.stringify(v)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
const now = () => Math.floor(Date.now() / 1000);

async function reason(verifier: TokenVerifier, t: string): Promise<string> {
  try {
    await verifier.verify(t);
  } catch (err) {
    assert.ok(err instanceof AuthError, `expected AuthError, got ${err}`);
    return err.reason;
  }
  return "accepted";
}

/** Both HS* verifier paths: the node:crypto one (default) and jose alone. */
const HMAC_PATHS = ["node", "jose"] as const;
type HmacPath = typeof HMAC_PATHS[number];

function hsVerifier(env: Record<string, string> = {}, hmac: HmacPath = "node") {
  return createJwtVerifier(loadConfig({ JWT_SECRET: SECRET, ...env }).auth.jwt, { hmac });
}

for (const path of HMAC_PATHS) {
  Deno.test(`${path}: ${"HS256: valid token gives a principal with claims"}`, async () => {
    const v = await hsVerifier({}, path);
    const p = await v.verify(
      await token("alice", { rooms: ["chat:*"], roomsReadonly: ["news"], roles: ["admin"] }),
    );
    assert.equal(p.userId, "alice");
    assert.deepEqual(p.rooms, ["chat:*"]);
    assert.deepEqual(p.roomsReadonly, ["news"]);
    assert.deepEqual(p.roles, ["admin"]);
    assert.ok(p.expiresAt! > now());
  });

  Deno.test(`${path}: ${"rejections: expired, not yet valid, issuer, audience, key, none, tampered, garbage"}`, async () => {
    const v = await hsVerifier(
      { JWT_ISSUER: "https://issuer.example", JWT_AUDIENCE: "realtime" },
      path,
    );
    const sign = (claims: jose.JWTPayload, secret = SECRET_BYTES, alg = "HS256") =>
      new jose.SignJWT(claims).setProtectedHeader({ alg }).sign(secret);
    const base = { sub: "alice", iss: "https://issuer.example", aud: "realtime", exp: now() + 600 };
    assert.equal(await reason(v, await sign(base)), "accepted");
    assert.equal(await reason(v, await sign({ ...base, exp: now() - 60 })), "expired");
    assert.equal(await reason(v, await sign({ ...base, nbf: now() + 600 })), "not_yet_valid");
    assert.equal(await reason(v, await sign({ ...base, iss: "https://other" })), "claim_invalid");
    assert.equal(await reason(v, await sign({ ...base, aud: "someone-else" })), "claim_invalid");
    const wrongKey = new TextEncoder().encode("another-secret-of-enough-length-0123456789");
    assert.equal(await reason(v, await sign(base, wrongKey)), "bad_signature");
    const none = `${b64({ alg: "none", typ: "JWT" })}.${b64(base)}.`;
    assert.equal(await reason(v, none), "alg_not_allowed");
    const hs512 = await sign(base, SECRET_BYTES, "HS512");
    assert.equal(await reason(v, hs512), "alg_not_allowed", "only allow-listed algorithms");
    const [h, , s] = (await sign(base)).split(".");
    const tampered = `${h}.${b64({ ...base, sub: "admin" })}.${s}`;
    assert.equal(await reason(v, tampered), "bad_signature");
    assert.equal(await reason(v, "garbage"), "malformed");
    assert.equal(await reason(v, "a.b.c"), "malformed");
    assert.equal(await reason(v, "x".repeat(9000)), "too_long");
    assert.equal(
      await reason(v, await sign({ iss: base.iss, aud: base.aud, exp: base.exp })),
      "claim_invalid",
    );
    assert.equal(
      await reason(v, await sign({ sub: "a", iss: base.iss, aud: base.aud })),
      "claim_invalid",
    );
    assert.equal(
      await reason(v, await sign({ ...base, rooms: "not-an-array" })),
      "claim_invalid",
      "claims we read are schema-checked",
    );
  });

  Deno.test(`${path}: ${"clock tolerance is honoured"}`, async () => {
    const v = await hsVerifier({ JWT_CLOCK_TOLERANCE_SEC: "30" }, path);
    const t = await new jose.SignJWT({ sub: "a", exp: now() - 10 }).setProtectedHeader({
      alg: "HS256",
    })
      .sign(SECRET_BYTES);
    assert.equal(await reason(v, t), "accepted");
  });

  Deno.test(`${path}: ${"JWT_REQUIRE_EXP=false accepts tokens without exp"}`, async () => {
    const v = await hsVerifier({ JWT_REQUIRE_EXP: "false" }, path);
    const t = await new jose.SignJWT({ sub: "a" }).setProtectedHeader({ alg: "HS256" }).sign(
      SECRET_BYTES,
    );
    assert.equal((await v.verify(t)).expiresAt, null);
    assert.equal(await reason(await hsVerifier({}, path), t), "claim_invalid");
  });

  Deno.test(`${path}: hand-made HS tokens (crit, b64, odd JSON, odd claim types) get jose's verdict`, async () => {
    const v = await hsVerifier(
      { JWT_ALGORITHMS: "HS256,HS384", JWT_AUDIENCE: "realtime" },
      path,
    );
    for (const [name, t, expected] of handMadeTokens()) {
      assert.equal(await reason(v, t), expected, name);
    }
  });
}

const seg = (bytes: Uint8Array | string) => Buffer.from(bytes).toString("base64url");

/** Signs any header and payload bytes, so tests can build what no JWT library would. */
function hmacToken(header: unknown, payload: Uint8Array | string, hash = "sha256"): string {
  const input = `${seg(JSON.stringify(header))}.${seg(payload)}`;
  return `${input}.${createHmac(hash, SECRET_BYTES).update(input).digest("base64url")}`;
}

/** [what, token, the reason both verifier paths must give]. */
function handMadeTokens(): [string, string, string][] {
  const claims = { sub: "a", aud: "realtime", exp: now() + 600 };
  const body = (extra: Record<string, unknown>) => JSON.stringify({ ...claims, ...extra });
  const good = hmacToken({ alg: "HS256" }, body({}));
  const [h, p, s] = good.split(".") as [string, string, string];
  return [
    ["well-formed", good, "accepted"],
    ["HS384, allowed", hmacToken({ alg: "HS384" }, body({}), "sha384"), "accepted"],
    ["header says HS384, signed HS256", hmacToken({ alg: "HS384" }, body({})), "bad_signature"],
    ["lower-case alg", hmacToken({ alg: "hs256" }, body({})), "alg_not_allowed"],
    ["alg none, signed", hmacToken({ alg: "none" }, body({})), "alg_not_allowed"],
    ["alg missing", hmacToken({ typ: "JWT" }, body({})), "malformed"],
    ["unknown crit", hmacToken({ alg: "HS256", crit: ["exp"], exp: 1 }, body({})), "malformed"],
    [
      "unencoded payload",
      hmacToken({ alg: "HS256", crit: ["b64"], b64: false }, body({})),
      "malformed",
    ],
    ["header is an array", hmacToken(["HS256"], body({})), "malformed"],
    ["payload is an array", hmacToken({ alg: "HS256" }, "[1]"), "malformed"],
    ["payload is not JSON", hmacToken({ alg: "HS256" }, "{sub:"), "malformed"],
    [
      "payload is not UTF-8",
      hmacToken({ alg: "HS256" }, new Uint8Array([123, 0xff, 125])),
      "malformed",
    ],
    ["exp is a string", hmacToken({ alg: "HS256" }, body({ exp: "9999999999" })), "claim_invalid"],
    ["exp an hour ago", hmacToken({ alg: "HS256" }, body({ exp: now() - 3600 })), "expired"],
    ["nbf is a string", hmacToken({ alg: "HS256" }, body({ nbf: "0" })), "not_yet_valid"],
    ["iat is a string", hmacToken({ alg: "HS256" }, body({ iat: "0" })), "not_yet_valid"],
    [
      "iat in the future (no max age)",
      hmacToken({ alg: "HS256" }, body({ iat: now() + 9 })),
      "accepted",
    ],
    [
      "aud list naming us",
      hmacToken({ alg: "HS256" }, body({ aud: ["x", "realtime"] })),
      "accepted",
    ],
    ["aud list without us", hmacToken({ alg: "HS256" }, body({ aud: ["x"] })), "claim_invalid"],
    [
      "aud missing",
      hmacToken({ alg: "HS256" }, JSON.stringify({ sub: "a", exp: claims.exp })),
      "claim_invalid",
    ],
    ["signature cut short", `${h}.${p}.${s.slice(0, -1)}`, "bad_signature"],
    ["signature one character longer", `${h}.${p}.${s}AA`, "malformed"],
    ["signature two bytes longer", `${h}.${p}.${s}AAA`, "bad_signature"],
    ["signature empty", `${h}.${p}.`, "bad_signature"],
    ["signature with base64 padding", `${h}.${p}.${s}=`, "malformed"],
    ["signature with a character outside base64url", `${h}.${p}.${s}!`, "malformed"],
    [
      "signature in base64, not base64url",
      `${h}.${p}.${s.replaceAll("-", "+").replaceAll("_", "/")}/`,
      "malformed",
    ],
    ["signature with a space inside", `${h}.${p}.${s.slice(0, 10)} ${s.slice(10)}`, "malformed"],
    ["signature of another payload", `${h}.${seg(body({ sub: "root" }))}.${s}`, "bad_signature"],
  ];
}

Deno.test("RS256 public key (PEM and JWK); HS/RS algorithm confusion is refused", async () => {
  const { publicKey, privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
  const pem = await jose.exportSPKI(publicKey);
  const v = await createJwtVerifier(loadConfig({ JWT_PUBLIC_KEY: pem }).auth.jwt);
  const good = await new jose.SignJWT({ sub: "alice", exp: now() + 60 })
    .setProtectedHeader({ alg: "RS256" }).sign(privateKey);
  assert.equal((await v.verify(good)).userId, "alice");
  // The classic confusion: sign HS256 with the public key's PEM text as the secret.
  const forged = await new jose.SignJWT({ sub: "alice", exp: now() + 60 })
    .setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(pem));
  assert.equal(await reason(v, forged), "alg_not_allowed");
  const jwk = JSON.stringify(await jose.exportJWK(publicKey));
  const vj = await createJwtVerifier(
    loadConfig({ JWT_PUBLIC_KEY: jwk, JWT_ALGORITHMS: "RS256" }).auth.jwt,
  );
  assert.equal((await vj.verify(good)).userId, "alice");
  // PEMs pasted into env files often carry literal \n.
  const escaped = pem.replaceAll("\n", "\\n");
  const ve = await createJwtVerifier(loadConfig({ JWT_PUBLIC_KEY: escaped }).auth.jwt);
  assert.equal((await ve.verify(good)).userId, "alice");
});

Deno.test("key configuration mistakes are ConfigErrors naming the variable", async () => {
  const { publicKey, privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
  const pem = await jose.exportSPKI(publicKey);
  await assert.rejects(
    createJwtVerifier(loadConfig({ JWT_PUBLIC_KEY: pem, JWT_ALGORITHMS: "RS256" }).auth.jwt),
    (e: Error) => e instanceof ConfigError && e.variable === "JWT_PUBLIC_KEY",
  );
  await assert.rejects(
    createJwtVerifier(loadConfig({ JWT_PUBLIC_KEY: pem, JWT_ALGORITHMS: "ES256,RS256" }).auth.jwt),
    (e: Error) => e instanceof ConfigError && e.variable === "JWT_ALGORITHMS",
  );
  const priv = await jose.exportPKCS8(privateKey);
  await assert.rejects(
    createJwtVerifier(loadConfig({ JWT_PUBLIC_KEY: priv }).auth.jwt),
    /private key/,
  );
  assert.throws(
    () => loadConfig({ JWT_PUBLIC_KEY: pem, JWT_ALGORITHMS: "HS256" }),
    /JWT_ALGORITHMS/,
  );
  assert.throws(
    () => loadConfig({ JWT_SECRET: SECRET, JWT_ALGORITHMS: "RS256" }),
    /JWT_ALGORITHMS/,
  );
  assert.throws(() => loadConfig({ JWT_SECRET: SECRET, JWT_ALGORITHMS: "none" }), /JWT_ALGORITHMS/);
  assert.throws(() => loadConfig({ JWT_SECRET: SECRET, JWT_PUBLIC_KEY: pem }), /set only one/);
});

Deno.test("JWKS URL: keys fetched by kid, rotation picks up a new key", async () => {
  const k1 = await jose.generateKeyPair("ES256", { extractable: true });
  const k2 = await jose.generateKeyPair("ES256", { extractable: true });
  // jose's key type: under node's type definitions (the node front door) it is node's webcrypto key.
  const jwk = async (k: jose.CryptoKey, kid: string) => ({
    ...(await jose.exportJWK(k)),
    kid,
    alg: "ES256",
  });
  let keys = [await jwk(k1.publicKey, "one")];
  let fetches = 0;
  const jwks = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () => {
    fetches++;
    return Response.json({ keys });
  });
  try {
    const v = await createJwtVerifier(
      loadConfig({ JWT_JWKS_URL: `http://127.0.0.1:${jwks.addr.port}/jwks.json` }).auth.jwt,
      { jwksCooldownMs: 0 },
    );
    const sign = (k: jose.CryptoKey, kid: string) =>
      new jose.SignJWT({ sub: "alice", exp: now() + 60 }).setProtectedHeader({ alg: "ES256", kid })
        .sign(k);
    assert.equal((await v.verify(await sign(k1.privateKey, "one"))).userId, "alice");
    assert.equal((await v.verify(await sign(k1.privateKey, "one"))).userId, "alice");
    assert.equal(fetches, 1, "the key set is cached");
    keys = [await jwk(k1.publicKey, "one"), await jwk(k2.publicKey, "two")];
    assert.equal((await v.verify(await sign(k2.privateKey, "two"))).userId, "alice");
    assert.equal(fetches, 2, "an unknown kid triggers one refetch");
    assert.equal(await reason(v, await sign(k2.privateKey, "three")), "unknown_key");
  } finally {
    await jwks.shutdown();
  }
});

Deno.test("verified-token cache: hits skip verification, never past exp, failures not cached", async () => {
  const clock = new FakeClock();
  let calls = 0;
  const inner = await createJwtVerifier(loadConfig({ JWT_SECRET: SECRET }).auth.jwt, { clock });
  const counting: TokenVerifier = {
    verify(t) {
      calls++;
      return inner.verify(t);
    },
  };
  const cached = withVerifiedTokenCache(counting, { clock, maxEntries: 2 });
  const t = await token("alice", { ttlSec: 60 });
  await cached.verify(t);
  await cached.verify(t);
  assert.equal(calls, 1);
  clock.advance(120_000);
  await assert.rejects(
    cached.verify(t),
    AuthError,
    "an expired entry is verified again (and fails)",
  );
  assert.equal(calls, 2);
  await assert.rejects(cached.verify("garbage"));
  await assert.rejects(cached.verify("garbage"));
  assert.equal(calls, 4, "failures are not cached");
  assert.ok(cached.size <= 2);
});

Deno.test("over the socket: expired, wrong-key and alg=none tokens get 401", async () => {
  await using ts = await startServer();
  const expired = await new jose.SignJWT({ sub: "a", exp: now() - 100 }).setProtectedHeader({
    alg: "HS256",
  })
    .sign(SECRET_BYTES);
  const none = `${b64({ alg: "none" })}.${b64({ sub: "a", exp: now() + 100 })}.`;
  for (const t of [expired, none, (await token("a")).slice(0, -2) + "xx"]) {
    assert.equal((await rawHandshake(ts.port, `/ws?token=${t}`)).status, 401);
  }
  assert.deepEqual(ts.audit.of("auth_failure").map((f) => f.reason), [
    "expired",
    "alg_not_allowed",
    "bad_signature",
  ]);
});
