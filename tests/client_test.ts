/**
 * Tests for the browser client against a small fake of the server's wire
 * protocol, served in-process on real sockets. The fake speaks just enough of
 * the protocol (welcome, join/leave, publish fan-out with ack, ping, refresh)
 * and lets each test bend it: refuse handshakes, swallow frames, close sockets.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  backoffDelay,
  connect,
  type ConnectOptions,
  type RealtimeClient,
  RealtimeError,
  type RealtimeEventName,
  type RealtimeEvents,
  type RoomMessage,
} from "../packages/client/src/client.ts";

type Json = Record<string, unknown>;

/** One server-side socket of the fake. */
interface FakeConn {
  readonly socket: WebSocket;
  /** The upgrade request's URL. */
  readonly url: URL;
  /** The `Sec-WebSocket-Protocol` offer, as sent. */
  readonly offered: string | null;
  readonly rooms: Set<string>;
  /** Every frame received, parsed. */
  readonly received: Json[];
  readonly closed: Promise<void>;
  send(message: Json | string): void;
}

interface FakeServerOptions {
  /** Answer the upgrade request with this response instead (e.g. a 401). */
  refuse?: (req: Request) => Response | undefined;
  /** Handle a frame first; return true to skip the default protocol. */
  onMessage?: (conn: FakeConn, message: Json) => boolean;
  /** Rooms whose join is refused with `forbidden`. */
  forbidden?: Set<string>;
  /** Reply to `ping` with `pong`. Default true. */
  answerPings?: boolean;
  /** Send `welcome` on open. Default true. */
  welcome?: boolean;
}

class FakeServer {
  readonly conns: FakeConn[] = [];
  /** Upgrade attempts, refused ones included. */
  attempts = 0;
  readonly options: FakeServerOptions;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #open = new Set<FakeConn>();

  constructor(options: FakeServerOptions = {}) {
    this.options = options;
    this.#server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      (req) => this.#handle(req),
    );
  }

  get url(): string {
    return `ws://127.0.0.1:${this.#server.addr.port}/ws`;
  }

  /** Connections currently open on the server. */
  get open(): FakeConn[] {
    return [...this.#open];
  }

  /** Closes every open socket with `code`, as a server would on shutdown or expiry. */
  async closeAll(code: number, reason = ""): Promise<void> {
    const conns = this.open;
    for (const conn of conns) conn.socket.close(code, reason);
    await Promise.all(conns.map((c) => c.closed));
  }

  async close(): Promise<void> {
    await this.closeAll(1000);
    await this.#server.shutdown();
  }

  #handle(req: Request): Response {
    this.attempts++;
    const refusal = this.options.refuse?.(req);
    if (refusal !== undefined) return refusal;
    const offered = req.headers.get("sec-websocket-protocol");
    const bearer = offered?.split(",").map((s) => s.trim())[0] === "bearer";
    const { socket, response } = Deno.upgradeWebSocket(req, bearer ? { protocol: "bearer" } : {});
    const { promise: closed, resolve: onClosed } = Promise.withResolvers<void>();
    const conn: FakeConn = {
      socket,
      url: new URL(req.url),
      offered,
      rooms: new Set(),
      received: [],
      closed,
      send(message) {
        if (socket.readyState !== WebSocket.OPEN) return;
        socket.send(typeof message === "string" ? message : JSON.stringify(message));
      },
    };
    this.conns.push(conn);
    this.#open.add(conn);
    socket.onopen = () => {
      if (this.options.welcome === false) return;
      conn.send({
        type: "welcome",
        connectionId: `c${this.conns.length}`,
        userId: "alice",
        expiresAt: null,
        instanceId: "fake",
      });
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(String(event.data)) as Json;
      conn.received.push(message);
      if (this.options.onMessage?.(conn, message) === true) return;
      this.#protocol(conn, message);
    };
    socket.onclose = () => {
      this.#open.delete(conn);
      onClosed();
    };
    return response;
  }

  #protocol(conn: FakeConn, message: Json): void {
    const id = message.id;
    const room = String(message.room);
    switch (message.type) {
      case "join":
        if (this.options.forbidden?.has(room)) {
          conn.send({ type: "error", code: "forbidden", message: "no", id, room });
          return;
        }
        conn.rooms.add(room);
        conn.send({ type: "joined", room, id });
        return;
      case "leave":
        if (!conn.rooms.delete(room)) {
          conn.send({ type: "error", code: "not_joined", message: "no", id, room });
          return;
        }
        conn.send({ type: "left", room, id });
        return;
      case "message":
        if (!conn.rooms.has(room)) {
          conn.send({ type: "error", code: "not_joined", message: "no", id, room });
          return;
        }
        for (const member of this.#open) {
          if (!member.rooms.has(room)) continue;
          member.send({ type: "message", room, payload: message.payload, from: "alice", ts: 1 });
        }
        conn.send({ type: "ack", id });
        return;
      case "ping":
        if (this.options.answerPings !== false) conn.send({ type: "pong", id });
        return;
      case "refresh":
        if (String(message.token).startsWith("good")) {
          conn.send({ type: "refreshed", expiresAt: 2_000_000_000, id });
        } else {
          conn.send({ type: "error", code: "unauthorized", message: "bad token", id });
        }
        return;
    }
  }
}

/** Fast timers so that every test runs in tens of milliseconds. */
const FAST: ConnectOptions = {
  reconnect: { initialDelayMs: 5, maxDelayMs: 20 },
  pingIntervalMs: 0,
  requestTimeoutMs: 1_000,
  connectTimeoutMs: 1_000,
};

/** Resolves with the arguments of the next `event`, or rejects after `ms`. */
function next<K extends RealtimeEventName>(
  rt: RealtimeClient,
  event: K,
  ms = 2_000,
): Promise<Parameters<RealtimeEvents[K]>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event within ${ms} ms`));
    }, ms);
    const off = rt.on(
      event,
      ((...args: Parameters<RealtimeEvents[K]>) => {
        clearTimeout(timer);
        off();
        resolve(args);
      }) as RealtimeEvents[K],
    );
  });
}

/** Polls `condition` until it holds, or fails after `ms`. */
async function until(condition: () => boolean, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await delay(5);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<RealtimeError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof RealtimeError, `expected a RealtimeError, got ${err}`);
    assert.equal(err.code, code);
    return err;
  }
  assert.fail(`expected a rejection with code ${code}`);
}

/** Starts a fake server and a client on it; closes both however the test ends. */
async function withClient(
  serverOptions: FakeServerOptions,
  clientOptions: ConnectOptions,
  test: (rt: RealtimeClient, server: FakeServer) => Promise<void>,
  { waitForOpen = true }: { waitForOpen?: boolean } = {},
): Promise<void> {
  const server = new FakeServer(serverOptions);
  const rt = connect(server.url, { ...FAST, token: "tok", ...clientOptions });
  try {
    if (waitForOpen) await next(rt, "open");
    await test(rt, server);
  } finally {
    await rt.close();
    await server.close();
  }
}

Deno.test("backoffDelay grows by factor, caps at maxDelayMs and applies full jitter", () => {
  const options = { initialDelayMs: 100, maxDelayMs: 1_000, factor: 2, jitter: false };
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, options)), [
    100,
    200,
    400,
    800,
    1_000,
    1_000,
  ]);
  assert.equal(backoffDelay(3, { ...options, jitter: true }, () => 0.5), 200);
  assert.equal(backoffDelay(3, { ...options, jitter: true }, () => 0), 0);
});

Deno.test("connect offers the token as a bearer subprotocol and reports the welcome", async () => {
  const server = new FakeServer();
  const rt = connect(server.url, { ...FAST, token: "tok-1" });
  try {
    assert.equal(rt.state, "connecting");
    const [info] = await next(rt, "open");
    assert.equal(rt.state, "open");
    assert.equal(server.conns[0]?.offered, "bearer, tok-1");
    assert.deepEqual(info, {
      connectionId: "c1",
      userId: "alice",
      expiresAt: null,
      instanceId: "fake",
      reconnected: false,
    });
    assert.equal(rt.userId, "alice");
    assert.equal(rt.connectionId, "c1");
    assert.equal(rt.instanceId, "fake");
  } finally {
    await rt.close();
    await server.close();
  }
  assert.equal(rt.state, "closed");
});

Deno.test("join, publish and leave: ack resolves, the sender receives its own message", async () => {
  await withClient({}, {}, async (rt, server) => {
    const got: Array<[unknown, RoomMessage<unknown>]> = [];
    await rt.join("chat:lobby", (payload, message) => got.push([payload, message]));
    assert.deepEqual(rt.rooms, ["chat:lobby"]);
    await rt.publish("chat:lobby", { text: "hi" });
    await until(() => got.length === 1);
    assert.deepEqual(got[0], [{ text: "hi" }, {
      type: "message",
      room: "chat:lobby",
      payload: { text: "hi" },
      from: "alice",
      ts: 1,
    }]);
    const sent = server.conns[0]?.received ?? [];
    assert.ok(sent.every((m) => typeof m.id === "string" && m.id.length <= 64));

    await rt.leave("chat:lobby");
    assert.deepEqual(rt.rooms, []);
    await rejectsWithCode(rt.publish("chat:lobby", 1), "not_joined");
  });
});

Deno.test("a refused join rejects with the server's error code", async () => {
  await withClient({ forbidden: new Set(["admin"]) }, {}, async (rt) => {
    const err = await rejectsWithCode(rt.join("admin", () => {}), "forbidden");
    assert.equal(err.room, "admin");
    assert.deepEqual(rt.rooms, []);
    await assert.rejects(rt.join("bad room!", () => {}), TypeError);
  });
});

Deno.test("reconnects after the server closes the socket and rejoins every room", async () => {
  await withClient({}, {}, async (rt, server) => {
    const got: unknown[] = [];
    await rt.join("a", (payload) => got.push(payload));
    await rt.join("b", () => {});
    const closed = next(rt, "close");
    const reconnecting = next(rt, "reconnecting");
    const reopened = next(rt, "open");
    await server.closeAll(1001, "going away");

    assert.deepEqual(await closed, [1001, "going away"]);
    const [attempt, delayMs] = await reconnecting;
    assert.equal(attempt, 1);
    assert.ok(delayMs >= 0 && delayMs <= 5);
    const [info] = await reopened;
    assert.equal(info.reconnected, true);
    assert.equal(info.connectionId, "c2");
    assert.equal(rt.state, "open");

    const second = server.conns[1];
    assert.ok(second);
    assert.deepEqual(second.received.map((m) => [m.type, m.room]), [["join", "a"], ["join", "b"]]);
    // The handler registered before the reconnect still receives.
    await rt.publish("a", "after");
    await until(() => got.length === 1);
    assert.deepEqual(got, ["after"]);
  });
});

Deno.test("requests made while disconnected are queued and sent after the rejoin", async () => {
  let refusing = false;
  const refuse = () => refusing ? new Response(null, { status: 503 }) : undefined;
  await withClient({ refuse }, {}, async (rt, server) => {
    await rt.join("a", () => {});
    refusing = true;
    const reconnecting = next(rt, "reconnecting");
    await server.closeAll(1001);
    await reconnecting;
    assert.equal(rt.state, "reconnecting");

    const first = rt.publish("a", 1);
    const second = rt.publish("a", 2);
    await delay(30);
    const reopened = next(rt, "open");
    refusing = false;
    await reopened;
    await Promise.all([first, second]);

    const last = server.conns.at(-1);
    assert.ok(last);
    assert.deepEqual(last.received.map((m) => [m.type, m.room, m.payload]), [
      ["join", "a", undefined],
      ["message", "a", 1],
      ["message", "a", 2],
    ]);
  });
});

Deno.test("beyond maxQueue, requests reject at once with queue_full", async () => {
  const server = new FakeServer({ refuse: () => new Response(null, { status: 503 }) });
  const rt = connect(server.url, { ...FAST, token: "tok", maxQueue: 2 });
  try {
    const queued = [rt.publish("a", 1), rt.publish("a", 2)];
    await rejectsWithCode(rt.publish("a", 3), "queue_full");
    await rejectsWithCode(rt.join("b", () => {}), "queue_full");
    const closing = rt.close();
    for (const request of queued) await rejectsWithCode(request, "closed");
    await closing;
  } finally {
    await rt.close();
    await server.close();
  }
});

Deno.test("a request without a reply rejects with timeout, queued or sent", async () => {
  const swallow = (_conn: FakeConn, message: Json) => message.type === "message";
  await withClient({ onMessage: swallow }, { requestTimeoutMs: 50 }, async (rt) => {
    await rt.join("a", () => {});
    const started = Date.now();
    const err = await rejectsWithCode(rt.publish("a", "lost"), "timeout");
    assert.equal(err.room, "a");
    assert.ok(Date.now() - started >= 45);
  });

  // Queue time counts too: a request never sent still times out.
  const server = new FakeServer({ refuse: () => new Response(null, { status: 503 }) });
  const rt = connect(server.url, { ...FAST, token: "tok", requestTimeoutMs: 50 });
  try {
    await rejectsWithCode(rt.join("a", () => {}), "timeout");
  } finally {
    await rt.close();
    await server.close();
  }
});

Deno.test("a connection that stops answering pings is closed and replaced", async () => {
  const options = { pingIntervalMs: 20, pongTimeoutMs: 30 };
  await withClient({ answerPings: false }, options, async (rt, server) => {
    await rt.join("a", () => {});
    const [code, reason] = await next(rt, "close");
    assert.equal(code, 4000);
    assert.match(reason, /pong/);
    assert.ok(server.conns[0]?.received.some((m) => m.type === "ping"));
    server.options.answerPings = true;
    await next(rt, "open");
    // The dead socket was closed from our side too, and the room was rejoined.
    await until(() => server.open.length === 1);
    assert.deepEqual(server.conns[1]?.received[0], {
      type: "join",
      room: "a",
      id: server.conns[1]?.received[0]?.id,
    });
  });
});

Deno.test("pongs keep a live connection open", async () => {
  await withClient({}, { pingIntervalMs: 10, pongTimeoutMs: 30 }, async (rt, server) => {
    await delay(120);
    assert.equal(rt.state, "open");
    assert.equal(server.conns.length, 1);
    assert.ok((server.conns[0]?.received.filter((m) => m.type === "ping").length ?? 0) >= 3);
  });
});

Deno.test("no reconnect after 4401 when the token is a string", async () => {
  await withClient({}, {}, async (rt, server) => {
    const closed = next(rt, "close");
    await server.closeAll(4401, "token expired");
    assert.deepEqual(await closed, [4401, "token expired"]);
    assert.equal(rt.state, "closed");
    await delay(50);
    assert.equal(server.attempts, 1);
    await rejectsWithCode(rt.publish("a", 1), "closed");
  });
});

Deno.test("no reconnect after a server's normal close", async () => {
  await withClient({}, {}, async (rt, server) => {
    const closed = next(rt, "close");
    await server.closeAll(1000);
    await closed;
    assert.equal(rt.state, "closed");
    await delay(30);
    assert.equal(server.attempts, 1);
  });
});

Deno.test("after 4401/4403 a token function supplies a fresh token and the client reconnects", async () => {
  let calls = 0;
  const token = () => Promise.resolve(`t${++calls}`);
  await withClient({}, { token }, async (rt, server) => {
    await rt.join("a", () => {});
    let reopened = next(rt, "open");
    await server.closeAll(4401);
    await reopened;
    reopened = next(rt, "open");
    await server.closeAll(4403);
    await reopened;
    assert.deepEqual(server.conns.map((c) => c.offered), [
      "bearer, t1",
      "bearer, t2",
      "bearer, t3",
    ]);
    assert.deepEqual(rt.rooms, ["a"]);
  });
});

Deno.test("on expiring, a token function is called and the token refreshed in place", async () => {
  let calls = 0;
  const token = () => `good-${++calls}`;
  await withClient({}, { token }, async (rt, server) => {
    const expiring = next(rt, "expiring");
    const refreshed = next(rt, "refreshed");
    server.conns[0]?.send({ type: "expiring", expiresAt: 1_900_000_000 });
    assert.deepEqual(await expiring, [1_900_000_000]);
    assert.deepEqual(await refreshed, [2_000_000_000]);
    assert.equal(rt.expiresAt, 2_000_000_000);
    const refresh = server.conns[0]?.received.find((m) => m.type === "refresh");
    assert.equal(refresh?.token, "good-2");
    assert.equal(typeof refresh?.id, "string");
    assert.equal(server.conns.length, 1);
  });
});

Deno.test("a refused refresh is reported as an unauthorized error", async () => {
  let calls = 0;
  const token = () => calls++ === 0 ? "good" : "bad";
  await withClient({}, { token }, async (rt, server) => {
    const error = next(rt, "error");
    server.conns[0]?.send({ type: "expiring", expiresAt: 1_900_000_000 });
    const [err] = await error;
    assert.equal(err.code, "unauthorized");
    assert.equal(rt.state, "open");
  });
});

Deno.test("with a string token, expiring is only reported: no refresh is sent", async () => {
  await withClient({}, { token: "fixed" }, async (rt, server) => {
    const expiring = next(rt, "expiring");
    server.conns[0]?.send({ type: "expiring", expiresAt: 1_900_000_000 });
    await expiring;
    await delay(20);
    assert.ok(!server.conns[0]?.received.some((m) => m.type === "refresh"));
  });
});

Deno.test("ticket flow: a fresh one-time ticket per connection, added to the query", async () => {
  const server = new FakeServer();
  let calls = 0;
  const ticket = () => Promise.resolve(`tk${++calls}`);
  const rt = connect(`${server.url}?app=demo`, { ...FAST, ticket });
  try {
    await next(rt, "open");
    const reopened = next(rt, "open");
    await server.closeAll(4401);
    await reopened;
    assert.deepEqual(
      server.conns.map((c) => [c.url.searchParams.get("app"), c.url.searchParams.get("ticket")]),
      [["demo", "tk1"], ["demo", "tk2"]],
    );
    assert.equal(server.conns[0]?.offered, null);
  } finally {
    await rt.close();
    await server.close();
  }
  assert.throws(() => connect("ws://x", { token: "a", ticket: () => "b" }), TypeError);
});

Deno.test("batch: asks for ?batch=1 and handles every line of a frame, in order", async () => {
  const onMessage = (conn: FakeConn, message: Json): boolean => {
    if (message.type !== "join") return false;
    const room = message.room;
    // `joined` and two room messages in one frame: the handler must already be in place.
    conn.send([
      JSON.stringify({ type: "joined", room, id: message.id }),
      JSON.stringify({ type: "message", room, payload: 1, from: "bob", ts: 1 }),
      JSON.stringify({ type: "message", room, payload: 2, from: "bob", ts: 2 }),
    ].join("\n"));
    return true;
  };
  await withClient({ onMessage }, { batch: true }, async (rt, server) => {
    assert.equal(server.conns[0]?.url.searchParams.get("batch"), "1");
    const got: unknown[] = [];
    await rt.join("a", (payload) => got.push(payload));
    await until(() => got.length === 2);
    assert.deepEqual(got, [1, 2]);
  });
});

Deno.test("batch: asked for by default; batch: false asks for one message per frame", async () => {
  await withClient({}, {}, (_rt, server) => {
    assert.equal(server.conns[0]?.url.searchParams.get("batch"), "1");
    return Promise.resolve();
  });
  await withClient({}, { batch: false }, (_rt, server) => {
    assert.equal(server.conns[0]?.url.searchParams.has("batch"), false);
    return Promise.resolve();
  });
});

Deno.test("handshake refusals: handshake_failed after the limit, and retries go on", async () => {
  const server = new FakeServer({ refuse: () => new Response(null, { status: 401 }) });
  const rt = connect(server.url, {
    ...FAST,
    token: "expired",
    reconnect: { initialDelayMs: 5, maxDelayMs: 10, handshakeFailureLimit: 2 },
  });
  try {
    const errors: RealtimeError[] = [];
    const attemptsAtError: number[] = [];
    rt.on("error", (err) => {
      errors.push(err);
      // Read here, not after polling: the next attempt may start in 5 ms.
      attemptsAtError.push(server.attempts);
    });
    await until(() => errors.length === 1);
    assert.equal(errors[0]?.code, "handshake_failed");
    assert.equal(attemptsAtError[0], 2);
    await until(() => server.attempts >= 4);
    assert.equal(rt.state, "reconnecting");
    assert.equal(errors.length, 1, "reported once per streak");
  } finally {
    await rt.close();
    await server.close();
  }
});

Deno.test("a revoked room is dropped with a left event", async () => {
  await withClient({}, {}, async (rt, server) => {
    const got: unknown[] = [];
    await rt.join("a", (payload) => got.push(payload));
    const left = next(rt, "left");
    server.conns[0]?.send({ type: "left", room: "a", reason: "revoked" });
    assert.deepEqual(await left, ["a", "revoked"]);
    assert.deepEqual(rt.rooms, []);
    server.conns[0]?.send({ type: "message", room: "a", payload: 1, from: "x", ts: 1 });
    await delay(20);
    assert.deepEqual(got, []);
  });
});

Deno.test("in flight at a drop: publish rejects with disconnected, join is resent", async () => {
  // Hold both requests unanswered, then drop the connection under them.
  const hold = (conn: FakeConn, message: Json) => conn === first && message.type !== "ping";
  let first: FakeConn | undefined;
  await withClient({ onMessage: (c, m) => hold(c, m) }, {}, async (rt, server) => {
    first = server.conns[0];
    const joined = rt.join("a", () => {});
    const published = rt.publish("a", 1);
    await until(() => (first?.received.length ?? 0) === 2);
    const rejected = rejectsWithCode(published, "disconnected");
    await server.closeAll(1001);
    await rejected;
    await joined;
    assert.deepEqual(rt.rooms, ["a"]);
  });
});

Deno.test("close() rejects queued requests, stops reconnecting and emits close", async () => {
  await withClient({}, {}, async (rt, server) => {
    const closed = next(rt, "close");
    await rt.close();
    assert.deepEqual(await closed, [1000, "client closed"]);
    assert.equal(rt.state, "closed");
    await rejectsWithCode(rt.join("a", () => {}), "closed");
    await delay(20);
    assert.equal(server.attempts, 1);
  });
});

Deno.test("a room whose rejoin is refused is dropped with a left event", async () => {
  const forbidden = new Set<string>();
  await withClient({ forbidden }, {}, async (rt, server) => {
    await rt.join("a", () => {});
    await rt.join("b", () => {});
    forbidden.add("a");
    const left = next(rt, "left");
    const error = next(rt, "error");
    const reopened = next(rt, "open");
    await server.closeAll(1001);
    assert.deepEqual(await left, ["a", "rejoin_failed"]);
    const [err] = await error;
    assert.equal(err.code, "forbidden");
    assert.equal(err.room, "a");
    await reopened;
    assert.deepEqual(rt.rooms, ["b"]);
  });
});

Deno.test("a socket that never gets its welcome is abandoned after connectTimeoutMs", async () => {
  await withClient({ welcome: false }, { connectTimeoutMs: 40 }, async (rt, server) => {
    const [code, reason] = await next(rt, "close");
    assert.equal(code, 4000);
    assert.match(reason, /welcome/);
    assert.equal(rt.state, "reconnecting");
    await until(() => server.attempts >= 2);
  }, { waitForOpen: false });
});
