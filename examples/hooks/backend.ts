/**
 * A complete hook backend (README, "Backend integration"): the app's own
 * group memberships decide who joins which private room, chat messages are
 * moderated before anyone sees them, and clients call it over their socket.
 * Dependency-free; run it next to the server:
 *
 *   WEBHOOK_SECRET=<32+ chars> PORT=8787 deno run --allow-net --allow-env examples/hooks/backend.ts
 *   WEBHOOK_SECRET=<same> HOOK_CONNECT_URL=http://127.0.0.1:8787/connect \
 *     HOOK_JOIN_URL=http://127.0.0.1:8787/join HOOK_PUBLISH_URL=http://127.0.0.1:8787/publish \
 *     HOOK_RPC_URL=http://127.0.0.1:8787/rpc deno task start
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";

const SECRET = Deno.env.get("WEBHOOK_SECRET") ?? "";
const PORT = Number(Deno.env.get("PORT") ?? "8787");
if (SECRET.length < 32) throw new Error("set WEBHOOK_SECRET (at least 32 characters)");

/** The app's own data: who belongs to which group (what the seed kept in a map). */
const GROUPS: Record<string, string[]> = {
  "group:founders": ["alice", "bob"],
  "group:support": ["carol"],
};
const BANNED = new Set(["mallory"]);

/** The server's signature: `t=<unix>,v1=<hex HMAC-SHA256("t.body")>`, at most 5 minutes old. */
function verified(body: string, header: string | null): boolean {
  const parts = Object.fromEntries((header ?? "").split(",").map((p) => p.trim().split("=")));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > 300) return false;
  const expected = createHmac("sha256", SECRET).update(`${t}.${body}`).digest();
  const given = Buffer.from(String(parts.v1 ?? ""), "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** What every hook request carries (see the README's contract). */
interface HookRequest {
  userId: string;
  connectionId: string;
  room?: string;
  payload?: unknown;
  method?: string;
}

const answers: Record<string, (req: HookRequest) => unknown> = {
  "/connect": ({ userId }) =>
    BANNED.has(userId)
      ? { allow: false, status: 403, reason: "this account is suspended" }
      : { allow: true, info: { name: userId[0]!.toUpperCase() + userId.slice(1) } },
  "/join": ({ userId, room = "" }) =>
    GROUPS[room]?.includes(userId)
      ? { allow: true, cacheSec: 30, presence: { member: true } }
      : { allow: false, reason: "not a member of this group" },
  "/publish": ({ payload }) => {
    const text = String((payload as { text?: unknown } | null)?.text ?? "");
    if (/\bspam\b/i.test(text)) return { allow: false, reason: "no spam, please" };
    return { allow: true, payload: { text: text.slice(0, 500), moderated: true } };
  },
  "/rpc": ({ userId, method }) =>
    method === "groups"
      ? { payload: Object.keys(GROUPS).filter((g) => GROUPS[g]!.includes(userId)) }
      : { error: { code: "not_found", message: `unknown method ${JSON.stringify(method)}` } },
};

Deno.serve({ port: PORT, hostname: "127.0.0.1" }, async (req) => {
  const path = new URL(req.url).pathname;
  if (req.method === "GET" && path === "/healthz") return new Response("ok");
  const answer = answers[path];
  if (req.method !== "POST" || answer === undefined) return new Response(null, { status: 404 });
  const body = await req.text();
  if (!verified(body, req.headers.get("x-realtime-signature"))) {
    return new Response(null, { status: 401 });
  }
  return Response.json(answer(JSON.parse(body) as HookRequest));
});
