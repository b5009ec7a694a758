// @ts-check
/**
 * A Node backend in front of the realtime server: it logs users in with its
 * own sessions (a cookie), mints their realtime tokens (GET /token) and
 * publishes on their behalf (POST /announce) with @realtime/server-sdk; it
 * also serves a page that does all of that in a browser. One command:
 *
 *   REALTIME_URL=http://localhost:8080 API_KEY=... JWT_SECRET=... npm start
 *
 * Users are a demo table below; use your own store. Prints
 * "listening on http://HOST:PORT" once ready (PORT=0 picks a free port).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { mintToken, RealtimeApi, RealtimeApiError } from "@realtime/server-sdk";

const REALTIME_URL = process.env.REALTIME_URL ?? "http://localhost:8080";
const JWT_SECRET = process.env.JWT_SECRET ?? "";
const api = new RealtimeApi({ url: REALTIME_URL, apiKey: process.env.API_KEY ?? "" });
const PAGE = readFileSync(new URL("./index.html", import.meta.url));

/** @type {Record<string, { password: string; name: string }>} */
const USERS = {
  alice: { password: "alice-pw", name: "Alice" },
  bob: { password: "bob-pw", name: "Bob" },
};
/** @type {Map<string, string>} session id -> user id */
const SESSIONS = new Map();

/** @param {string} a @param {string} b */
const sameSecret = (a, b) =>
  a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** @param {import("node:http").IncomingMessage} req */
function userOf(req) {
  const match = /(?:^|;\s*)session=([^;]+)/.exec(req.headers.cookie ?? "");
  return match === null ? undefined : SESSIONS.get(match[1] ?? "");
}

/** @param {import("node:http").IncomingMessage} req @returns {Promise<string>} */
async function bodyOf(req) {
  let text = "";
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 4096) throw new Error("body too large");
  }
  return text;
}

const server = createServer(async (req, res) => {
  /** @param {number} status @param {string | Buffer} body @param {Record<string, string>} headers */
  const send = (status, body = "", headers = {}) => {
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers });
    res.end(body);
  };
  try {
    const route = `${req.method} ${req.url}`;
    if (route === "GET /") return send(200, PAGE, { "content-type": "text/html; charset=utf-8" });
    if (route === "GET /config") {
      return send(200, JSON.stringify({ realtimeUrl: REALTIME_URL }), {
        "content-type": "application/json",
      });
    }
    if (route === "POST /login") {
      const form = JSON.parse(await bodyOf(req));
      const user = USERS[String(form.user)];
      if (user === undefined || !sameSecret(String(form.password), user.password)) {
        return send(401, "wrong user or password");
      }
      const session = randomBytes(24).toString("base64url");
      SESSIONS.set(session, String(form.user));
      return send(204, "", { "set-cookie": `session=${session}; HttpOnly; SameSite=Lax; Path=/` });
    }
    const user = userOf(req);
    if (route === "GET /token") {
      if (user === undefined) return send(401, "log in first");
      const token = await mintToken(JWT_SECRET, {
        sub: user,
        rooms: ["chat:*", "user:{sub}"],
        info: { name: USERS[user]?.name ?? user },
        ttlSec: 900,
      });
      return send(200, token, { "cache-control": "no-store" });
    }
    if (route === "POST /announce") {
      if (user === undefined) return send(401, "log in first");
      await api.publish("chat:lobby", { text: `${USERS[user]?.name} pressed the button` });
      await api.publish(`user:${user}`, { text: "only you see this" });
      return send(204);
    }
    return send(404, "not found");
  } catch (err) {
    if (err instanceof RealtimeApiError) return send(502, `${err.code}: ${err.message}`);
    return send(400, "bad request");
  }
});

server.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? "127.0.0.1", () => {
  const address = server.address();
  if (address !== null && typeof address === "object") {
    console.log(`listening on http://${address.address}:${address.port}`);
  }
});
// Stop taking requests, drop idle keep-alive connections, give the rest 2 s.
process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 2000).unref();
});
