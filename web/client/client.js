// lib/client/room.ts
var JoinedRoom = class {
  /** Receives the room's messages. */
  handler;
  /** Whether rejoins ask to recover missed messages. */
  recover;
  #position;
  /** @param handler the app's handler @param recover send `since` on rejoins */
  constructor(handler, recover) {
    this.handler = handler;
    this.recover = recover;
  }
  /** The last position seen, in a history room. */
  get position() {
    return this.#position === void 0 ? void 0 : {
      ...this.#position
    };
  }
  /** What a rejoin sends as `since`, when recovery is on and a position is known. */
  since() {
    return this.recover ? this.position : void 0;
  }
  /**
   * Takes the server's `joined`. A recovered rejoin keeps the old position:
   * the replayed messages that follow advance it one by one.
   */
  joined(reply) {
    if (reply.recovered === true) return {
      recovered: true,
      missed: reply.missed ?? 0
    };
    if (reply.offset !== void 0 && reply.epoch !== void 0) {
      this.#position = {
        offset: reply.offset,
        epoch: reply.epoch
      };
    }
    return {
      recovered: false,
      missed: 0
    };
  }
  /**
   * Whether a room message is new. Advances the position for history
   * messages; refuses one at or below it in the same epoch (already handled).
   */
  accept(message) {
    const { offset, epoch } = message;
    if (offset === void 0 || epoch === void 0) return true;
    const seen = this.#position;
    if (seen !== void 0 && seen.epoch === epoch && offset <= seen.offset) return false;
    this.#position = {
      offset,
      epoch
    };
    return true;
  }
};

// lib/client/presence.ts
var RoomPresence = class {
  #members = /* @__PURE__ */ new Map();
  #count = 0;
  #truncated = false;
  /**
   * Takes a `presence_state` (after a join, a rejoin, or when a large room
   * shrinks): replaces the view, and returns the change from the old one
   * (every member is a join on the first state).
   */
  state(message) {
    const before = new Map(this.#members);
    this.#members.clear();
    const joins = [];
    for (const m of message.members) {
      const member = {
        userId: m.userId,
        connections: m.connections
      };
      if (m.info !== void 0) member.info = m.info;
      this.#members.set(m.userId, member);
      if (!before.delete(m.userId)) joins.push(withInfo(m.userId, member.info));
    }
    this.#count = message.count;
    this.#truncated = message.truncated === true;
    const leaves = [
      ...before.keys()
    ].map((userId) => ({
      userId
    }));
    return {
      joins,
      leaves,
      count: this.#count
    };
  }
  /** Takes a `presence_diff` and returns it as a change. */
  diff(message) {
    const joins = [];
    for (const j of message.joins) {
      const info = j.info;
      const member = {
        userId: j.userId,
        connections: 1
      };
      if (info !== void 0) member.info = info;
      this.#members.set(j.userId, member);
      joins.push(withInfo(j.userId, info));
    }
    const leaves = [];
    for (const l of message.leaves) {
      this.#members.delete(l.userId);
      leaves.push({
        userId: l.userId
      });
    }
    this.#count = message.count;
    if (message.joins.length === 0 && message.leaves.length === 0) {
      this.#truncated = this.#count !== this.#members.size;
    }
    return {
      joins,
      leaves,
      count: this.#count
    };
  }
  /** A copy of the current view. */
  snapshot() {
    return {
      members: [
        ...this.#members.values()
      ].map((m) => ({
        ...m
      })),
      count: this.#count,
      truncated: this.#truncated
    };
  }
};
function withInfo(userId, info) {
  return info === void 0 ? {
    userId
  } : {
    userId,
    info
  };
}

// lib/client/client.ts
var RealtimeError = class extends Error {
  /** The server's error code, or one of the client's own; see {@linkcode ClientErrorCode}. */
  code;
  /** Room the error is about, when there is one. */
  room;
  /** For `rate_limited`: milliseconds to wait before publishing again. */
  retryAfterMs;
  /**
   * @param code what went wrong, as a stable machine-readable code
   * @param message human-readable detail
   * @param options room, retryAfterMs and cause
   */
  constructor(code, message, options = {}) {
    super(message, options.cause === void 0 ? void 0 : {
      cause: options.cause
    });
    this.name = "RealtimeError";
    this.code = code;
    this.room = options.room;
    this.retryAfterMs = options.retryAfterMs;
  }
};
var ClientCloseCode = {
  /** No `pong` within `pongTimeoutMs`, or no `welcome` within `connectTimeoutMs`. */
  DeadConnection: 4e3
};
function backoffDelay(attempt, options = {}, random = Math.random) {
  const { initialDelayMs = 500, maxDelayMs = 3e4, factor = 2, jitter = true } = options;
  const exponent = Math.max(0, attempt - 1);
  const ceiling = Math.min(maxDelayMs, initialDelayMs * factor ** exponent);
  return jitter ? Math.floor(random() * ceiling) : ceiling;
}
function connect(url, options = {}) {
  return new RealtimeClient(url, options);
}
var ROOM_PATTERN = /^[A-Za-z0-9_\-.:@/]{1,128}$/;
var OPEN = 1;
var CLOSED = 3;
var CLOSE_NORMAL = 1e3;
var CLOSE_TOKEN_EXPIRED = 4401;
var CLOSE_FORBIDDEN = 4403;
var MIN_RETRY_MS = 100;
var MAX_RETRY_MS = 5e3;
function randomPrefix() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => (b % 36).toString(36)).join("") + "-";
}
function resolveUrl(source) {
  const url = new URL(source, pageHref());
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  return url;
}
var CLOSE_GRACE_MS = 3e3;
function assertRoom(operation, room) {
  if (typeof room !== "string" || !ROOM_PATTERN.test(room)) {
    throw new TypeError(`Cannot ${operation}: room must be 1-128 characters of A-Z a-z 0-9 _ - . : @ /, current value is ${JSON.stringify(room)}`);
  }
}
function assertDuration(name, value, allowZero) {
  if (!Number.isFinite(value) || value < 0 || !allowZero && value === 0) {
    throw new RangeError(`Cannot connect: ${name} must be a positive number, current value is ${value}`);
  }
}
function isRecord(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
function pageHref() {
  return globalThis.location?.href;
}
var RealtimeClient = class {
  #urls;
  #urlIndex = 0;
  #batch;
  #idPrefix = randomPrefix();
  #token;
  #ticket;
  #reconnect;
  #pingIntervalMs;
  #pongTimeoutMs;
  #connectTimeoutMs;
  #maxQueue;
  #requestTimeoutMs;
  #WebSocket;
  #state = "connecting";
  #socket;
  /** Whether the current socket got its `welcome` (it may still be rejoining). */
  #socketWelcomed = false;
  #welcome;
  #everWelcomed = false;
  /** Bumped for every connection attempt, so a stale async step can tell it is stale. */
  #generation = 0;
  #attempt = 0;
  #failuresBeforeWelcome = 0;
  #nextId = 0;
  #rooms = /* @__PURE__ */ new Map();
  /** Presence rooms' member maps, for joined rooms only. */
  #presence = /* @__PURE__ */ new Map();
  #queue = [];
  #inflight = /* @__PURE__ */ new Map();
  #rejoinsLeft = 0;
  #connectTimer;
  #reconnectTimer;
  #pingTimer;
  #pingId;
  #refreshing = false;
  #listeners = /* @__PURE__ */ new Map();
  /** Sockets told to close whose close event has not arrived yet. */
  #draining = /* @__PURE__ */ new Set();
  #drainWaiters = /* @__PURE__ */ new Set();
  /**
   * Prefer {@linkcode connect}.
   *
   * @param url WebSocket endpoint
   * @param options see {@linkcode ConnectOptions}
   */
  constructor(url, options = {}) {
    const { token, ticket, reconnect = {}, pingIntervalMs = 25e3, pongTimeoutMs = 1e4, connectTimeoutMs = 1e4, maxQueue = 100, requestTimeoutMs = 1e4, batch = false, WebSocket = globalThis.WebSocket } = options;
    if (token !== void 0 && ticket !== void 0) {
      throw new TypeError("Cannot connect: give either token or ticket, current value has both");
    }
    if (WebSocket === void 0) {
      throw new TypeError("Cannot connect: no WebSocket implementation, current value is undefined");
    }
    assertDuration("pingIntervalMs", pingIntervalMs, true);
    assertDuration("pongTimeoutMs", pongTimeoutMs, false);
    assertDuration("connectTimeoutMs", connectTimeoutMs, false);
    assertDuration("requestTimeoutMs", requestTimeoutMs, false);
    if (!Number.isInteger(maxQueue) || maxQueue < 0) {
      throw new RangeError(`Cannot connect: maxQueue must be a non-negative integer, current value is ${maxQueue}`);
    }
    if (typeof url === "function") {
      this.#urls = url;
    } else {
      const list = typeof url === "string" || url instanceof URL ? [
        url
      ] : url;
      if (list.length === 0) {
        throw new TypeError("Cannot connect: the URL list is empty, current value is []");
      }
      this.#urls = list.map(resolveUrl);
    }
    this.#batch = batch;
    this.#token = token;
    this.#ticket = ticket;
    this.#reconnect = reconnect;
    this.#pingIntervalMs = pingIntervalMs;
    this.#pongTimeoutMs = pongTimeoutMs;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#maxQueue = maxQueue;
    this.#requestTimeoutMs = requestTimeoutMs;
    this.#WebSocket = WebSocket;
    void this.#open();
  }
  /** Where the connection is: `connecting` (first attempt), `open`, `reconnecting`, `closed`. */
  get state() {
    return this.#state;
  }
  /** The user of the latest connection, from its `welcome`. */
  get userId() {
    return this.#welcome?.userId;
  }
  /** The latest connection's id, from its `welcome`. */
  get connectionId() {
    return this.#welcome?.connectionId;
  }
  /** The server instance of the latest connection, from its `welcome`. */
  get instanceId() {
    return this.#welcome?.instanceId;
  }
  /** Token expiry in seconds since the epoch (`null`: never), updated on refresh. */
  get expiresAt() {
    return this.#welcome?.expiresAt;
  }
  /** Rooms currently joined; they are rejoined after every reconnect. */
  get rooms() {
    return [
      ...this.#rooms.keys()
    ];
  }
  /** The last position seen in a joined history room (what a rejoin recovers from). */
  position(room) {
    return this.#rooms.get(room)?.position;
  }
  /**
   * The members of a joined presence room, kept up to date from the server's
   * frames (no round trip); `undefined` before the room's first state, and
   * for rooms not joined or without presence.
   *
   * @example
   * ```ts ignore
   * await rt.join("chat:lobby", onMessage);
   * rt.on("presence", (room, { joins, leaves, count }) => {
   *   render(rt.presence(room)?.members ?? [], count);
   * });
   * ```
   */
  presence(room) {
    return this.#presence.get(room)?.snapshot();
  }
  /**
   * Listens for a lifecycle event.
   *
   * @example
   * ```ts ignore
   * const off = rt.on("close", (code, reason) => console.log(code, reason));
   * off();
   * ```
   *
   * @param event event name; see {@linkcode RealtimeEvents}
   * @param listener called with the event's arguments; exceptions are reported, not propagated
   * @returns a function that removes the listener
   */
  on(event, listener) {
    let set = this.#listeners.get(event);
    if (set === void 0) this.#listeners.set(event, set = /* @__PURE__ */ new Set());
    const stored = listener;
    set.add(stored);
    return () => {
      set.delete(stored);
    };
  }
  /**
   * Joins a room. Resolves once the server answers `joined`; from then on,
   * `handler` receives the room's messages, across reconnects, until `leave`.
   * Joining a room already joined only replaces its handler.
   *
   * Rejects with a {@linkcode RealtimeError} carrying the server's code
   * (`forbidden`, `too_many_rooms`, …) or `timeout`, `queue_full`, `closed`;
   * rejects with a `TypeError` for a malformed room name.
   *
   * @example
   * ```ts ignore
   * await rt.join<{ text: string }>("chat:lobby", (payload, message) => {
   *   console.log(`${message.from}: ${payload.text}`);
   * });
   * ```
   *
   * In a history room, messages carry `offset` and `epoch`, and by default
   * every rejoin after a reconnect asks for what was missed: replayed messages
   * reach `handler` like live ones, in order, never twice; see the `"rejoin"`
   * event.
   *
   * @param room room name: 1–128 of `A-Z a-z 0-9 _ - . : @ /`
   * @param handler receives each message published to the room
   * @param options recovery on rejoin
   * @returns resolves on `joined`
   */
  join(room, handler, options = {}) {
    const { recover = true } = options;
    try {
      assertRoom("join room", room);
    } catch (err) {
      return Promise.reject(err);
    }
    const existing = this.#rooms.get(room);
    if (existing !== void 0) {
      existing.handler = handler;
      return Promise.resolve();
    }
    return this.#request({
      type: "join",
      room,
      id: this.#newId()
    }, "join", (reply) => {
      const joined = new JoinedRoom(handler, recover);
      if (reply.type === "joined") joined.joined(reply);
      this.#rooms.set(room, joined);
    });
  }
  /**
   * Reads a history room's past: the newest `limit` messages (before offset
   * `before`), oldest first. Needs read access to the room, not membership.
   * Rejects with `bad_request` for a room without history, `forbidden`,
   * `unavailable` (store down), or the client's own codes.
   *
   * @example Page backwards
   * ```ts ignore
   * let page = await rt.history("chat:lobby", { limit: 50 });
   * while (page.more) {
   *   page = await rt.history("chat:lobby", { limit: 50, before: page.messages[0].offset });
   * }
   * ```
   */
  history(room, options = {}) {
    try {
      assertRoom("read history", room);
    } catch (err) {
      return Promise.reject(err);
    }
    const frame = {
      type: "history",
      room,
      id: this.#newId()
    };
    if (options.limit !== void 0) frame.limit = options.limit;
    if (options.before !== void 0) frame.before = options.before;
    return this.#request(frame, "history", (reply) => {
      if (reply.type !== "history") {
        throw new RealtimeError("bad_frame", `Expected a history reply, got ${reply.type}`);
      }
      return {
        messages: reply.messages,
        offset: reply.offset,
        epoch: reply.epoch,
        more: reply.more
      };
    });
  }
  /**
   * Leaves a room. Its handler stops receiving messages immediately; the
   * promise resolves when the server answers `left` (a `not_joined` answer
   * counts as success). While disconnected it usually resolves at once, since
   * the next connection simply does not rejoin the room; a `join` still queued
   * for the room is followed by a queued `leave` instead.
   *
   * @param room a room name
   * @returns resolves once the server no longer has this connection in the room
   */
  leave(room) {
    try {
      assertRoom("leave room", room);
    } catch (err) {
      return Promise.reject(err);
    }
    const wasJoined = this.#rooms.delete(room);
    this.#presence.delete(room);
    if (this.#state === "connecting" || this.#state === "reconnecting") {
      const joinQueued = this.#queue.some((r) => r.frame.type === "join" && r.frame.room === room);
      if (!joinQueued && !(wasJoined && this.#socketWelcomed)) return Promise.resolve();
    }
    return this.#request({
      type: "leave",
      room,
      id: this.#newId()
    }, "leave", () => {
    });
  }
  /**
   * Publishes `payload` to a joined room. Resolves when the server answers
   * `ack`: the message was accepted for delivery, which includes delivery
   * back to this client's own handler.
   *
   * Rejects with the server's code (`not_joined`, `forbidden`,
   * `rate_limited` with `retryAfterMs`, `payload_too_large`, …) or `timeout`,
   * `queue_full`, `disconnected`, `closed`.
   *
   * In a history room a publish is idempotent: one cut off by a dropped
   * connection is sent again after the rejoin, and one answered `unavailable`
   * (the server's store is down) is sent again after `retryAfterMs`, both
   * with the same id, until `requestTimeoutMs`; the server delivers it once.
   *
   * @param room a joined room
   * @param payload any JSON value
   * @returns resolves on `ack`
   */
  publish(room, payload) {
    try {
      assertRoom("publish", room);
      if (payload === void 0) {
        throw new TypeError("Cannot publish: payload is required, current value is undefined");
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#request({
      type: "message",
      room,
      payload,
      id: this.#newId()
    }, "message", () => {
    });
  }
  /**
   * Closes the connection for good: no reconnect; queued and pending requests
   * reject with code `closed`; room handlers are dropped. Emits `"close"` once
   * the socket has closed. Safe to call more than once.
   *
   * @returns resolves once the socket has finished closing, or after a few
   * seconds if the network never confirms it
   */
  close() {
    if (this.#state !== "closed") {
      const socket = this.#socket;
      this.#finish();
      if (socket !== void 0) this.#abandon(socket, 1e3, "client closed", true);
    }
    return this.#whenDrained();
  }
  // ---- connection lifecycle ----
  async #open() {
    const generation = ++this.#generation;
    let url;
    try {
      url = this.#nextUrl();
    } catch (err) {
      this.#emitError(new RealtimeError("bad_request", "The URL function failed", {
        cause: err
      }));
      this.#scheduleReconnect(false);
      return;
    }
    let protocols;
    try {
      if (this.#ticket !== void 0) {
        url.searchParams.set("ticket", await this.#ticket());
      } else if (this.#token !== void 0) {
        const token = typeof this.#token === "function" ? await this.#token() : this.#token;
        protocols = [
          "bearer",
          token
        ];
      }
    } catch (err) {
      if (generation !== this.#generation) return;
      this.#emitError(new RealtimeError("token_failed", "Getting a token or ticket failed", {
        cause: err
      }));
      this.#scheduleReconnect(false);
      return;
    }
    if (generation !== this.#generation) return;
    let socket;
    try {
      socket = protocols === void 0 ? new this.#WebSocket(url.href) : new this.#WebSocket(url.href, protocols);
    } catch (err) {
      this.#emitError(new RealtimeError("bad_request", "Could not create the WebSocket", {
        cause: err
      }));
      this.#scheduleReconnect(false);
      return;
    }
    this.#socket = socket;
    this.#socketWelcomed = false;
    socket.onmessage = (event) => {
      if (typeof event.data === "string") this.#onFrame(socket, event.data);
    };
    socket.onclose = (event) => {
      if (socket !== this.#socket) return;
      this.#socket = void 0;
      this.#disconnected(event.code, event.reason);
    };
    socket.onerror = () => {
    };
    this.#connectTimer = setTimeout(() => {
      this.#connectTimer = void 0;
      this.#drop(socket, "no welcome within connectTimeoutMs");
    }, this.#connectTimeoutMs);
  }
  /** The URL of the next attempt: the function's answer, or the list's next entry. */
  #nextUrl() {
    const url = typeof this.#urls === "function" ? resolveUrl(this.#urls()) : new URL(this.#urls[this.#urlIndex++ % this.#urls.length]);
    if (this.#batch) url.searchParams.set("batch", "1");
    return url;
  }
  /** Gives up on a socket that is open but not working, and reconnects. */
  #drop(socket, reason) {
    if (socket !== this.#socket) return;
    this.#socket = void 0;
    this.#abandon(socket, ClientCloseCode.DeadConnection, reason, false);
    this.#disconnected(ClientCloseCode.DeadConnection, reason);
  }
  /**
   * Closes a socket without waiting for it: a dead peer may never finish the
   * closing handshake. Its close event only settles `close()`'s promise and,
   * with `report`, is emitted as the final `"close"`.
   */
  #abandon(socket, code, reason, report2) {
    socket.onmessage = null;
    socket.onerror = null;
    if (socket.readyState === CLOSED) {
      socket.onclose = null;
      if (report2) this.#emit("close", code, reason);
      return;
    }
    this.#draining.add(socket);
    socket.onclose = (event) => {
      socket.onclose = null;
      this.#draining.delete(socket);
      if (report2) this.#emit("close", event.code, event.reason);
      if (this.#draining.size > 0) return;
      for (const waiter of [
        ...this.#drainWaiters
      ]) waiter();
    };
    try {
      socket.close(code, reason);
    } catch {
    }
  }
  #whenDrained() {
    if (this.#draining.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = () => {
        clearTimeout(grace);
        this.#drainWaiters.delete(waiter);
        resolve();
      };
      const grace = setTimeout(waiter, CLOSE_GRACE_MS);
      this.#drainWaiters.add(waiter);
    });
  }
  /** The current socket is gone: settle its requests, then reconnect or stop. */
  #disconnected(code, reason) {
    const welcomed = this.#socketWelcomed;
    this.#socketWelcomed = false;
    this.#stopConnectionTimers();
    this.#rejoinsLeft = 0;
    this.#refreshing = false;
    const requeue = [];
    for (const request of [
      ...this.#inflight.values()
    ]) {
      const frame = request.frame;
      if (request.kind === "join") {
        requeue.push(request);
        this.#inflight.delete(request.id);
      } else if (frame.type === "leave") {
        this.#succeed(request, {
          type: "left",
          room: frame.room
        });
      } else if (frame.type === "message" && this.#rooms.get(frame.room)?.position !== void 0) {
        this.#inflight.delete(request.id);
        if (request.retry !== void 0) clearTimeout(request.retry);
        request.retry = void 0;
        requeue.push(request);
      } else if (frame.type === "message") {
        const message = `Connection lost before the server acknowledged the message (${code})`;
        this.#fail(request, new RealtimeError("disconnected", message, {
          room: frame.room
        }));
      } else {
        this.#settle(request);
      }
    }
    this.#queue.unshift(...requeue);
    this.#emit("close", code, reason);
    if (this.#state === "closed") return;
    if (!this.#mayReconnectAfter(code)) {
      this.#finish();
      return;
    }
    this.#scheduleReconnect(welcomed);
  }
  #mayReconnectAfter(code) {
    if (this.#reconnect === false) return false;
    const refreshable = typeof this.#token === "function" || this.#ticket !== void 0;
    if (code === CLOSE_TOKEN_EXPIRED || code === CLOSE_FORBIDDEN) return refreshable;
    return code !== CLOSE_NORMAL;
  }
  #scheduleReconnect(welcomed) {
    if (this.#reconnect === false) {
      this.#finish();
      return;
    }
    if (!welcomed) {
      this.#failuresBeforeWelcome++;
      const limit = this.#reconnect.handshakeFailureLimit ?? 3;
      if (this.#failuresBeforeWelcome === limit) {
        this.#emitError(new RealtimeError("handshake_failed", `${limit} connection attempts in a row failed before the server's welcome; the credentials may be refused`));
      }
    }
    if (this.#state === "closed") return;
    this.#state = "reconnecting";
    const attempt = ++this.#attempt;
    const delayMs = backoffDelay(attempt, this.#reconnect);
    this.#emit("reconnecting", attempt, delayMs);
    if (this.#state !== "reconnecting") return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = void 0;
      void this.#open();
    }, delayMs);
  }
  /** Terminal state: nothing will be sent or retried again. */
  #finish() {
    this.#state = "closed";
    this.#generation++;
    this.#stopConnectionTimers();
    if (this.#reconnectTimer !== void 0) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = void 0;
    for (const request of [
      ...this.#queue,
      ...this.#inflight.values()
    ]) {
      if (request.kind === "rejoin" || request.kind === "refresh") this.#settle(request);
      else this.#fail(request, new RealtimeError("closed", "The client is closed"));
    }
    this.#queue.length = 0;
    this.#inflight.clear();
    this.#rooms.clear();
    this.#presence.clear();
    this.#socket = void 0;
    this.#socketWelcomed = false;
  }
  #stopConnectionTimers() {
    if (this.#connectTimer !== void 0) clearTimeout(this.#connectTimer);
    if (this.#pingTimer !== void 0) clearTimeout(this.#pingTimer);
    this.#connectTimer = void 0;
    this.#pingTimer = void 0;
    this.#pingId = void 0;
  }
  // ---- incoming frames ----
  #onFrame(socket, data) {
    for (const line of data.split("\n")) {
      if (socket !== this.#socket) return;
      if (line.trim() === "") continue;
      let message;
      try {
        message = JSON.parse(line);
      } catch {
        message = void 0;
      }
      if (!isRecord(message) || typeof message.type !== "string") {
        this.#emitError(new RealtimeError("bad_frame", "The server sent a frame that is not a JSON message"));
        continue;
      }
      this.#dispatch(socket, message);
    }
  }
  #dispatch(socket, message) {
    switch (message.type) {
      case "welcome":
        this.#onWelcome(socket, message);
        return;
      case "message": {
        const joined = this.#rooms.get(message.room);
        if (joined === void 0 || !joined.accept(message)) return;
        const handler = joined.handler;
        try {
          handler(message.payload, message);
        } catch (err) {
          report(err);
        }
        return;
      }
      case "joined":
      case "ack":
      case "refreshed":
      case "history":
        this.#reply(message, message.id);
        return;
      case "left":
        if (message.reason === "revoked" && this.#rooms.delete(message.room)) {
          this.#presence.delete(message.room);
          this.#emit("left", message.room, "revoked");
        }
        this.#reply(message, message.id);
        return;
      case "presence_state":
      case "presence_diff":
        this.#onPresence(message);
        return;
      case "pong":
        if (message.id === void 0 || message.id === this.#pingId) this.#onPong(socket);
        return;
      case "expiring":
        this.#onExpiring(socket, message.expiresAt);
        return;
      case "error":
        this.#onError(message);
        return;
    }
  }
  #onPresence(message) {
    const room = message.room;
    if (!this.#rooms.has(room)) return;
    let view = this.#presence.get(room);
    if (view === void 0) {
      if (message.type !== "presence_state") return;
      this.#presence.set(room, view = new RoomPresence());
    }
    const change = message.type === "presence_state" ? view.state(message) : view.diff(message);
    this.#emit("presence", room, change);
  }
  #onWelcome(socket, message) {
    if (this.#socketWelcomed) return;
    this.#socketWelcomed = true;
    if (this.#connectTimer !== void 0) clearTimeout(this.#connectTimer);
    this.#connectTimer = void 0;
    this.#failuresBeforeWelcome = 0;
    this.#attempt = 0;
    this.#welcome = {
      connectionId: message.connectionId,
      userId: message.userId,
      expiresAt: message.expiresAt,
      instanceId: message.instanceId,
      reconnected: this.#everWelcomed
    };
    this.#everWelcomed = true;
    this.#startPinging(socket);
    const rooms = [
      ...this.#rooms.keys()
    ];
    this.#rejoinsLeft = rooms.length;
    if (rooms.length === 0) this.#becomeOpen(socket);
    for (const room of rooms) {
      const frame = {
        type: "join",
        room,
        id: this.#newId()
      };
      const since = this.#rooms.get(room)?.since();
      if (since !== void 0) frame.since = since;
      const request = this.#track(frame, "rejoin", (reply) => {
        const joined = this.#rooms.get(room);
        if (reply.type === "joined" && joined !== void 0) {
          this.#emit("rejoin", room, joined.joined(reply));
        }
        if (reply.type === "error") {
          this.#rooms.delete(room);
          this.#presence.delete(room);
          const error = new RealtimeError(reply.code, `Rejoining failed: ${reply.message}`, {
            room
          });
          this.#emitError(error);
          this.#emit("left", room, "rejoin_failed");
        }
        this.#rejoined(socket);
      }, (err) => {
        if (err instanceof RealtimeError) this.#emitError(err);
        this.#rejoined(socket);
      });
      this.#send(socket, request);
    }
  }
  #rejoined(socket) {
    if (socket !== this.#socket || this.#rejoinsLeft === 0) return;
    if (--this.#rejoinsLeft === 0) this.#becomeOpen(socket);
  }
  #becomeOpen(socket) {
    const welcome = this.#welcome;
    if (socket !== this.#socket || welcome === void 0) return;
    this.#state = "open";
    for (const request of this.#queue.splice(0)) this.#send(socket, request);
    this.#emit("open", {
      ...welcome
    });
  }
  #reply(message, id) {
    const request = id === void 0 ? void 0 : this.#inflight.get(id);
    if (request !== void 0) this.#succeed(request, message);
  }
  #onError(message) {
    const request = message.id === void 0 ? void 0 : this.#inflight.get(message.id);
    const error = new RealtimeError(message.code, message.message, {
      room: message.room,
      retryAfterMs: message.retryAfterMs
    });
    if (request === void 0) {
      this.#emitError(error);
    } else if (request.frame.type === "message" && message.code === "unavailable" && request.timer !== void 0) {
      this.#retryLater(request, message.retryAfterMs);
    } else if (request.kind === "rejoin" || request.kind === "leave" && message.code === "not_joined") {
      this.#succeed(request, message);
    } else {
      this.#fail(request, error);
    }
  }
  /** Sends a publish again, same id, once the server's store may be back. */
  #retryLater(request, retryAfterMs) {
    const wait = Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, retryAfterMs ?? 1e3));
    if (request.retry !== void 0) clearTimeout(request.retry);
    request.retry = setTimeout(() => {
      request.retry = void 0;
      const socket = this.#socket;
      if (socket === void 0 || !this.#inflight.has(request.id)) return;
      this.#sendFrame(socket, request.frame);
    }, wait);
  }
  // ---- liveness ----
  #startPinging(socket) {
    if (this.#pingIntervalMs === 0) return;
    this.#pingTimer = setTimeout(() => {
      const id = this.#newId();
      this.#pingId = id;
      this.#sendFrame(socket, {
        type: "ping",
        id
      });
      this.#pingTimer = setTimeout(() => {
        this.#pingTimer = void 0;
        this.#drop(socket, "no pong within pongTimeoutMs");
      }, this.#pongTimeoutMs);
    }, this.#pingIntervalMs);
  }
  #onPong(socket) {
    if (this.#pingId === void 0) return;
    this.#pingId = void 0;
    if (this.#pingTimer !== void 0) clearTimeout(this.#pingTimer);
    this.#startPinging(socket);
  }
  // ---- token refresh ----
  #onExpiring(socket, expiresAt) {
    this.#emit("expiring", expiresAt);
    const source = this.#token;
    if (typeof source !== "function" || this.#refreshing) return;
    this.#refreshing = true;
    const current = () => socket === this.#socket && this.#state !== "closed";
    const done = () => {
      if (current()) this.#refreshing = false;
    };
    Promise.resolve().then(source).then((token) => {
      if (!current()) return;
      const frame = {
        type: "refresh",
        token,
        id: this.#newId()
      };
      const request = this.#track(frame, "refresh", (reply) => {
        done();
        if (reply.type !== "refreshed") return;
        if (this.#welcome !== void 0) this.#welcome.expiresAt = reply.expiresAt;
        this.#emit("refreshed", reply.expiresAt);
      }, (err) => {
        done();
        if (err instanceof RealtimeError) this.#emitError(err);
      });
      this.#send(socket, request);
    }, (err) => {
      done();
      this.#emitError(new RealtimeError("token_failed", "Getting a fresh token failed", {
        cause: err
      }));
    });
  }
  // ---- requests ----
  #request(frame, kind, onSuccess) {
    return new Promise((resolve, reject) => {
      const room = "room" in frame ? frame.room : void 0;
      if (this.#state === "closed") {
        reject(new RealtimeError("closed", "The client is closed", {
          room
        }));
        return;
      }
      const socket = this.#socket;
      const open = this.#state === "open" && socket !== void 0;
      if (!open && this.#queue.length >= this.#maxQueue) {
        const message = `Not connected, and ${this.#maxQueue} requests are already queued`;
        reject(new RealtimeError("queue_full", message, {
          room
        }));
        return;
      }
      const request = this.#track(frame, kind, (reply) => {
        try {
          resolve(onSuccess(reply));
        } catch (err) {
          reject(err);
        }
      }, reject);
      if (open) this.#send(socket, request);
      else this.#queue.push(request);
    });
  }
  /** Creates a request and starts its timeout; the caller sends or queues it. */
  #track(frame, kind, onReply, reject) {
    const request = {
      id: frame.id,
      kind,
      frame,
      onReply,
      reject,
      timer: void 0
    };
    request.timer = setTimeout(() => {
      request.timer = void 0;
      if (request.retry !== void 0) clearTimeout(request.retry);
      request.retry = void 0;
      const index = this.#queue.indexOf(request);
      if (index !== -1) this.#queue.splice(index, 1);
      this.#inflight.delete(request.id);
      const room = "room" in frame ? frame.room : void 0;
      const message = `No reply to ${frame.type} within ${this.#requestTimeoutMs} ms`;
      reject(new RealtimeError("timeout", message, {
        room
      }));
    }, this.#requestTimeoutMs);
    return request;
  }
  #send(socket, request) {
    this.#inflight.set(request.id, request);
    this.#sendFrame(socket, request.frame);
  }
  #sendFrame(socket, frame) {
    if (socket.readyState !== OPEN) return;
    try {
      socket.send(JSON.stringify(frame));
    } catch {
    }
  }
  /** Removes a request from the tables and stops its timer, without settling its promise. */
  #settle(request) {
    if (request.timer !== void 0) clearTimeout(request.timer);
    if (request.retry !== void 0) clearTimeout(request.retry);
    request.timer = void 0;
    request.retry = void 0;
    this.#inflight.delete(request.id);
  }
  #succeed(request, reply) {
    this.#settle(request);
    request.onReply(reply);
  }
  #fail(request, error) {
    this.#settle(request);
    request.reject(error);
  }
  #newId() {
    return this.#idPrefix + (++this.#nextId).toString(36);
  }
  // ---- events ----
  #emit(event, ...args) {
    const set = this.#listeners.get(event);
    if (set === void 0) return;
    for (const listener of [
      ...set
    ]) {
      try {
        listener(...args);
      } catch (err) {
        report(err);
      }
    }
  }
  #emitError(error) {
    this.#emit("error", error);
  }
};
function report(error) {
  const reportError = globalThis.reportError;
  if (reportError !== void 0) {
    reportError(error);
    return;
  }
  setTimeout(() => {
    throw error;
  });
}
export {
  ClientCloseCode,
  RealtimeClient,
  RealtimeError,
  backoffDelay,
  connect
};
