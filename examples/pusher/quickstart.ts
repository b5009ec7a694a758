/**
 * One minute of Pusher: `pusher-js` (unchanged) against this server. Start
 * the server in dev mode (`deno task start`, no JWT_* set: it creates the
 * app `app-id` / `app-key` / `app-secret`), then:
 *
 *   deno run -A examples/pusher/quickstart.ts
 *
 * It connects, joins the presence channel `presence-lobby` as Alice (your
 * backend signs subscriptions; here the `pusher` SDK does it in-process) and
 * prints who is there. Run it twice at once to see Bob join.
 *
 * @module
 */
import PusherJs from "pusher-js";
import type * as PusherTypes from "pusher-js";
import PusherServer from "pusher";

// Deno types this CommonJS package's default export as its module; at runtime it is the class.
const Pusher = PusherJs as unknown as typeof PusherTypes.default.default;

const host = Deno.env.get("HOST") ?? "localhost";
const port = Number(Deno.env.get("PORT") ?? "8000");
const app = {
  appId: Deno.env.get("APP_ID") ?? "app-id",
  key: Deno.env.get("APP_KEY") ?? "app-key",
  secret: Deno.env.get("APP_SECRET") ?? "app-secret",
};
const user = Deno.env.get("USER_NAME") ?? "Alice";

const backend = new PusherServer({ ...app, host, port: String(port), useTLS: false });
const pusher = new Pusher(app.key, {
  cluster: "mt1", // required by pusher-js, unused with wsHost
  wsHost: host,
  wsPort: port,
  forceTLS: false,
  enabledTransports: ["ws"],
  channelAuthorization: {
    endpoint: "/pusher/auth", // your backend's route; replaced by the handler below
    transport: "ajax",
    customHandler: ({ socketId, channelName }, callback) =>
      callback(
        null,
        backend.authorizeChannel(socketId, channelName, {
          user_id: user.toLowerCase(),
          user_info: { name: user },
        }),
      ),
  },
});

const lobby = pusher.subscribe("presence-lobby");
lobby.bind("pusher:subscription_succeeded", (members: { count: number }) => {
  console.log(`${user} is in presence-lobby with ${members.count} member(s)`);
});
lobby.bind("pusher:member_added", (member: { info: { name: string } }) => {
  console.log(`${member.info.name} joined`);
});
// Stays for a while (EXIT_AFTER_MS), then leaves.
setTimeout(() => pusher.disconnect(), Number(Deno.env.get("EXIT_AFTER_MS") ?? "60000"));
