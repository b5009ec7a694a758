/**
 * Node `ws` 8 room server: the minimal broadcast that most Node realtime
 * services start from, speaking the same JSON as ours so one generator drives
 * both. No auth, no validation.
 *
 * Env: PORT, HOSTNAME (default 127.0.0.1), HEARTBEAT_INTERVAL_MS (default 30000).
 */
import { createServer } from "node:http";
import { createRequire } from "node:module";

// Loaded with require: Node resolves it from bench/node/node_modules, while
// `deno check bench/` (whose import map has no such package) leaves it alone.
const { WebSocket, WebSocketServer } = createRequire(import.meta.url)("ws");

const port = Number(process.env.PORT ?? "0");
const hostname = process.env.HOSTNAME ?? "127.0.0.1";
const heartbeatMs = Number(process.env.HEARTBEAT_INTERVAL_MS ?? "30000");

/** @type {Map<string, Set<WebSocket>>} */
const rooms = new Map();
let nextId = 0;

const http = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok"}');
    return;
  }
  res.writeHead(404).end("not found");
});

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });

http.on("upgrade", (req, socket, head) => {
  if (!req.url?.startsWith("/ws")) {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws));
});

/** Sockets that answered the last ping; the classic `ws` heartbeat. */
const alive = new WeakSet();

wss.on("connection", (ws) => {
  const connectionId = `c${nextId++}`;
  /** @type {Set<string>} */
  const joined = new Set();
  alive.add(ws);
  ws.on("pong", () => alive.add(ws));
  ws.on("error", () => {});
  ws.send(JSON.stringify({
    type: "welcome",
    connectionId,
    userId: connectionId,
    expiresAt: null,
    instanceId: "node-ws",
  }));
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      return;
    }
    if (typeof msg?.room !== "string") return;
    if (msg.type === "join") {
      let members = rooms.get(msg.room);
      if (!members) rooms.set(msg.room, members = new Set());
      members.add(ws);
      joined.add(msg.room);
      ws.send(JSON.stringify({ type: "joined", room: msg.room, id: msg.id }));
    } else if (msg.type === "message") {
      const members = rooms.get(msg.room);
      if (!members) return;
      const frame = JSON.stringify({
        type: "message",
        room: msg.room,
        payload: msg.payload,
        from: connectionId,
        ts: Date.now(),
      });
      for (const member of members) {
        if (member.readyState === WebSocket.OPEN) member.send(frame);
      }
    }
  });
  ws.on("close", () => {
    for (const room of joined) {
      const members = rooms.get(room);
      members?.delete(ws);
      if (members?.size === 0) rooms.delete(room);
    }
  });
});

setInterval(() => {
  for (const ws of wss.clients) {
    if (!alive.has(ws)) {
      ws.terminate();
      continue;
    }
    alive.delete(ws);
    ws.ping();
  }
}, heartbeatMs).unref();

http.listen(port, hostname, () => {
  const addr = http.address();
  const actual = typeof addr === "object" && addr ? addr.port : port;
  console.log(`Listening on http://${hostname}:${actual}/`);
});

process.on("SIGTERM", () => process.exit(0));
