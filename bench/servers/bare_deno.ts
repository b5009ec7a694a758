/**
 * Bare Deno room server: `Deno.serve` + `Deno.upgradeWebSocket`, no auth, no
 * validation, no logging. It speaks the same JSON as ours so one generator
 * drives both; it is the ceiling for this runtime, not a product.
 *
 * Env: PORT, HOSTNAME (default 127.0.0.1), HEARTBEAT_INTERVAL_MS (default 30000).
 *
 * @module
 */

const port = Number(Deno.env.get("PORT") ?? "0");
const hostname = Deno.env.get("HOSTNAME") ?? "127.0.0.1";
const heartbeatMs = Number(Deno.env.get("HEARTBEAT_INTERVAL_MS") ?? "30000");
// Deno pings after half the idle timeout and closes after the whole of it, so
// this gives roughly one ping per heartbeat interval, like the other servers.
const idleTimeoutSec = Math.max(2, Math.round((2 * heartbeatMs) / 1000));

const rooms = new Map<string, Set<WebSocket>>();
let nextId = 0;

interface Incoming {
  type?: unknown;
  room?: unknown;
  id?: unknown;
  payload?: unknown;
}

function onMessage(socket: WebSocket, userId: string, joined: Set<string>, data: unknown): void {
  if (typeof data !== "string") return;
  let msg: Incoming;
  try {
    msg = JSON.parse(data) as Incoming;
  } catch {
    return;
  }
  if (typeof msg.room !== "string") return;
  if (msg.type === "join") {
    let members = rooms.get(msg.room);
    if (!members) rooms.set(msg.room, members = new Set());
    members.add(socket);
    joined.add(msg.room);
    socket.send(JSON.stringify({ type: "joined", room: msg.room, id: msg.id }));
  } else if (msg.type === "message") {
    const members = rooms.get(msg.room);
    if (!members) return;
    // Serialized once per publish, like ours, so the comparison is about the
    // transport and not about who calls JSON.stringify more often.
    const frame = JSON.stringify({
      type: "message",
      room: msg.room,
      payload: msg.payload,
      from: userId,
      ts: Date.now(),
    });
    for (const member of members) {
      if (member.readyState === WebSocket.OPEN) member.send(frame);
    }
  }
}

Deno.serve({
  port,
  hostname,
  onListen: ({ port }) => console.log(`Listening on http://${hostname}:${port}/`),
}, (req) => {
  const url = new URL(req.url);
  if (url.pathname === "/healthz") return Response.json({ status: "ok" });
  if (url.pathname !== "/ws" || req.headers.get("upgrade") !== "websocket") {
    return new Response("not found", { status: 404 });
  }
  const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout: idleTimeoutSec });
  const connectionId = `c${nextId++}`;
  const joined = new Set<string>();
  socket.onopen = () => {
    socket.send(JSON.stringify({
      type: "welcome",
      connectionId,
      userId: connectionId,
      expiresAt: null,
      instanceId: "bare-deno",
    }));
  };
  socket.onmessage = (e) => onMessage(socket, connectionId, joined, e.data);
  socket.onclose = () => {
    for (const room of joined) {
      const members = rooms.get(room);
      members?.delete(socket);
      if (members?.size === 0) rooms.delete(room);
    }
  };
  socket.onerror = () => {};
  return response;
});
