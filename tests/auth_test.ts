import assert from "node:assert/strict";
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

function hsVerifier(env: Record<string, string> = {}) {
  return createJwtVerifier(loadConfig({ JWT_SECRET: SECRET, ...env }).auth.jwt);
}

Deno.test("HS256: valid token gives a principal with claims", async () => {
  const v = await hsVerifier();
  const p = await v.verify(
    await token("alice", { rooms: ["chat:*"], roomsReadonly: ["news"], roles: ["admin"] }),
  );
  assert.equal(p.userId, "alice");
  assert.deepEqual(p.rooms, ["chat:*"]);
  assert.deepEqual(p.roomsReadonly, ["news"]);
  assert.deepEqual(p.roles, ["admin"]);
  assert.ok(p.expiresAt! > now());
});

Deno.test("rejections: expired, not yet valid, issuer, audience, key, none, tampered, garbage", async () => {
  const v = await hsVerifier({ JWT_ISSUER: "https://issuer.example", JWT_AUDIENCE: "realtime" });
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

Deno.test("clock tolerance is honoured", async () => {
  const v = await hsVerifier({ JWT_CLOCK_TOLERANCE_SEC: "30" });
  const t = await new jose.SignJWT({ sub: "a", exp: now() - 10 }).setProtectedHeader({
    alg: "HS256",
  })
    .sign(SECRET_BYTES);
  assert.equal(await reason(v, t), "accepted");
});

Deno.test("JWT_REQUIRE_EXP=false accepts tokens without exp", async () => {
  const v = await hsVerifier({ JWT_REQUIRE_EXP: "false" });
  const t = await new jose.SignJWT({ sub: "a" }).setProtectedHeader({ alg: "HS256" }).sign(
    SECRET_BYTES,
  );
  assert.equal((await v.verify(t)).expiresAt, null);
  assert.equal(await reason(await hsVerifier(), t), "claim_invalid");
});

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
