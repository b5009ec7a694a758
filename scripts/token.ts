/**
 * `deno task token -- --sub alice --rooms 'chat:*' --ttl 1h`: prints a token
 * signed with JWT_SECRET, for local use and tests by hand.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError, loadConfigFromEnv } from "../lib/config.ts";
import { mintToken, parseDuration } from "../lib/dev.ts";
import { InfoClaim } from "../lib/core/auth.ts";

const USAGE =
  `usage: deno task token -- --sub <user> [--rooms 'a,b:*'] [--readonly 'news'] [--roles admin] [--ttl 1h] [--jti <id>] [--info '{"name":"Alice"}']
--info is the presence info others see (a JSON object, at most 1 KiB).
Signs with JWT_SECRET (HS256 unless JWT_ALGORITHMS says otherwise); honours JWT_ISSUER and JWT_AUDIENCE.`;

function fail(message: string): never {
  console.error(`token: ${message}\n${USAGE}`);
  Deno.exit(2);
}

/** `--info`: a JSON object the server will accept as the `info` claim. */
function parseInfo(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    fail(`--info must be JSON, e.g. '{"name":"Alice"}': current value is ${text}`);
  }
  const result = InfoClaim.safeParse(value);
  if (!result.success || value === null) {
    fail(`--info: ${result.error?.issues[0]?.message ?? "must be a JSON object"}`);
  }
  return value;
}

const list = (v: string | undefined) => (v ?? "").split(",").map((s) => s.trim()).filter(Boolean);

try {
  const { values } = parseArgs({
    args: Deno.args.filter((a) => a !== "--"),
    options: {
      sub: { type: "string" },
      rooms: { type: "string" },
      readonly: { type: "string" },
      roles: { type: "string" },
      ttl: { type: "string", default: "1h" },
      jti: { type: "string" },
      info: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  if (!values.sub) fail("--sub is required");
  const info = values.info === undefined ? undefined : parseInfo(values.info);
  const { jwt } = loadConfigFromEnv().auth;
  if (jwt.key.kind !== "secret") {
    fail("JWT_SECRET must be set (tokens for public-key setups come from your identity provider)");
  }
  const alg = jwt.algorithms.find((a) => a.startsWith("HS")) as
    | "HS256"
    | "HS384"
    | "HS512"
    | undefined;
  const token = await mintToken(new TextEncoder().encode(jwt.key.secret), {
    sub: values.sub,
    rooms: list(values.rooms),
    roomsReadonly: list(values.readonly),
    roles: list(values.roles),
    ttlSec: parseDuration(values.ttl),
    alg: alg ?? "HS256",
    ...(values.jti !== undefined ? { jti: values.jti } : {}),
    ...(info !== undefined ? { info } : {}),
    ...(jwt.issuer !== undefined ? { issuer: jwt.issuer } : {}),
    ...(jwt.audience?.[0] !== undefined ? { audience: jwt.audience[0] } : {}),
  });
  console.log(token);
} catch (err) {
  if (err instanceof ConfigError || err instanceof TypeError) fail(err.message);
  throw err;
}
