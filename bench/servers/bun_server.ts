/**
 * Bun room server: `Bun.serve` with its built-in WebSocket pub/sub
 * (uWebSockets underneath), no auth, no validation, no logging. It speaks the
 * same JSON subset as bench/servers/bare_deno.ts (`welcome`, `join` →
 * `joined`, `message` fanned out to the room, sender included) so one
 * generator drives both; a room is a Bun topic and a message goes out through
 * `server.publish`, which frames it once for every subscriber. It is the
 * ceiling a user picking a runtime for raw speed would compare with.
 *
 * Run by Bun, not Deno (`bun bench/servers/bun_server.ts`); the `Bun` API it
 * uses is declared below so that `deno check` reads the file too.
 *
 * Env: PORT, HOSTNAME (default 127.0.0.1), HEARTBEAT_INTERVAL_MS (default 30000).
 *
 * @module
 */

/** One connection's state (`ws.data`). */
interface Conn {
  connectionId: string;
}

/** The part of Bun's server WebSocket used here. */
interface BunSocket {
  readonly data: Conn;
  send(data: string): number;
  subscribe(topic: string): void;
}

/** The part of Bun's `Server` used here. */
interface BunServer {
  readonly port: number;
  upgrade(req: Request, options: { data: Conn }): boolean;
  publish(topic: string, data: string): number;
}

/** The part of `Bun.serve`'s options used here. */
interface BunServeOptions {
  port: number;
  hostname: string;
  fetch(req: Request, server: BunServer): Response | undefined;
  websocket: {
    idleTimeout: number;
    sendPings: boolean;
    perMessageDeflate: boolean;
    open(ws: BunSocket): void;
    message(ws: BunSocket, data: string | Uint8Array): void;
  };
}

declare const Bun: { serve(options: BunServeOptions): BunServer };
declare const process: { env: Record<string, string | undefined> };

const port = Number(process.env.PORT ?? "0");
const hostname = process.env.HOSTNAME ?? "127.0.0.1";
const heartbeatMs = Number(process.env.HEARTBEAT_INTERVAL_MS ?? "30000");
// Like bare Deno: a ping after about one heartbeat of silence, a close after
// two. uWebSockets counts in steps of 4 s and refuses fewer than 8.
const idleTimeoutSec = Math.min(960, Math.max(8, Math.round((2 * heartbeatMs) / 1000)));

interface Incoming {
  type?: unknown;
  room?: unknown;
  id?: unknown;
  payload?: unknown;
}

let nextId = 0;

const server: BunServer = Bun.serve({
  port,
  hostname,
  fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === "/healthz") return Response.json({ status: "ok" });
    if (url.pathname === "/ws" && srv.upgrade(req, { data: { connectionId: `c${nextId++}` } })) {
      return undefined;
    }
    return new Response("not found", { status: 404 });
  },
  websocket: {
    idleTimeout: idleTimeoutSec,
    sendPings: true,
    perMessageDeflate: false,
    open(ws) {
      const { connectionId } = ws.data;
      ws.send(JSON.stringify({
        type: "welcome",
        connectionId,
        userId: connectionId,
        expiresAt: null,
        instanceId: "bun",
      }));
    },
    message(ws, data) {
      if (typeof data !== "string") return;
      let msg: Incoming;
      try {
        msg = JSON.parse(data) as Incoming;
      } catch {
        return;
      }
      if (typeof msg.room !== "string") return;
      if (msg.type === "join") {
        ws.subscribe(msg.room);
        ws.send(JSON.stringify({ type: "joined", room: msg.room, id: msg.id }));
      } else if (msg.type === "message") {
        // Serialized once per publish, like the other servers; `server.publish`
        // (unlike `ws.publish`) includes the sender, as they do.
        server.publish(
          msg.room,
          JSON.stringify({
            type: "message",
            room: msg.room,
            payload: msg.payload,
            from: ws.data.connectionId,
            ts: Date.now(),
          }),
        );
      }
    },
  },
});

console.log(`Listening on http://${hostname}:${server.port}/`);
