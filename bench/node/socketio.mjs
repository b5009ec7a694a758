/**
 * Socket.IO 4 room server, WebSocket transport only, driven by socket.io-client.
 * Events mirror our JSON: the client emits `join` / `message` with the same
 * objects; the server emits `welcome`, `joined` and `message` with the same
 * objects, and `io.to(room)` includes the sender, as ours does.
 *
 * Env: PORT, HOSTNAME (default 127.0.0.1), HEARTBEAT_INTERVAL_MS (default 25000,
 * Socket.IO's own pingInterval).
 */
import { createServer } from "node:http";
import { createRequire } from "node:module";

// Loaded with require: Node resolves it from bench/node/node_modules, while
// `deno check bench/` (whose import map has no such package) leaves it alone.
const { Server } = createRequire(import.meta.url)("socket.io");

const port = Number(process.env.PORT ?? "0");
const hostname = process.env.HOSTNAME ?? "127.0.0.1";
const heartbeatMs = Number(process.env.HEARTBEAT_INTERVAL_MS ?? "25000");

const http = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok"}');
    return;
  }
  // Socket.IO attaches its own request listener for /socket.io/; leave those alone.
  if (!req.url?.startsWith("/socket.io/")) res.writeHead(404).end("not found");
});

const io = new Server(http, {
  transports: ["websocket"],
  pingInterval: heartbeatMs,
  pingTimeout: Math.max(5000, heartbeatMs),
  perMessageDeflate: false,
  serveClient: false,
  cors: { origin: "*" },
});

io.on("connection", (socket) => {
  socket.emit("welcome", {
    type: "welcome",
    connectionId: socket.id,
    userId: socket.id,
    expiresAt: null,
    instanceId: "socketio",
  });
  socket.on("join", (msg) => {
    if (typeof msg?.room !== "string") return;
    socket.join(msg.room);
    socket.emit("joined", { type: "joined", room: msg.room, id: msg.id });
  });
  socket.on("message", (msg) => {
    if (typeof msg?.room !== "string") return;
    io.to(msg.room).emit("message", {
      type: "message",
      room: msg.room,
      payload: msg.payload,
      from: socket.id,
      ts: Date.now(),
    });
  });
});

http.listen(port, hostname, () => {
  const addr = http.address();
  const actual = typeof addr === "object" && addr ? addr.port : port;
  console.log(`Listening on http://${hostname}:${actual}/`);
});

process.on("SIGTERM", () => process.exit(0));
