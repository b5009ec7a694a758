/**
 * Request correlation: ids, the queue of requests made while disconnected,
 * the requests in flight keyed by id, their timeouts, and what becomes of
 * each kind when the connection drops or the client closes.
 *
 * @module
 */
import type { ServerMessage } from "./wire.ts";
import { RealtimeError } from "./errors.ts";
import type { ClientFrame } from "./frames.ts";
import { sendJson, type WebSocketLike } from "./transport.ts";

/** What a request is for; decides its fate on a disconnect. */
export type RequestKind =
  | "join"
  | "leave"
  | "message"
  | "refresh"
  | "rejoin"
  | "history"
  | "rpc";

type Timer = ReturnType<typeof setTimeout>;

/** A request from creation until its reply, timeout or abandonment. */
export interface PendingRequest {
  /** The frame's id, which the reply repeats. */
  readonly id: string;
  /** What the request is for. */
  readonly kind: RequestKind;
  /** What is sent, and sent again after a reconnect or an `unavailable`. */
  readonly frame: ClientFrame;
  /** Runs synchronously on success, before later frames of the same batch are handled. */
  readonly onReply: (reply: ServerMessage) => void;
  /** Rejects the request's promise. */
  readonly reject: (error: Error) => void;
  /** The request timeout, until the request is settled. */
  timer: Timer | undefined;
  /** A publish answered `unavailable`, waiting to be sent again with the same id. */
  retry?: Timer | undefined;
}

/** Bounds on the wait before a publish answered `unavailable` is sent again. */
const MIN_RETRY_MS = 100;
const MAX_RETRY_MS = 5_000;

/**
 * Request ids start with a random prefix per client: the server deduplicates
 * history-room publishes by (user, room, id), so two tabs of one user must
 * never produce the same id. `getRandomValues` works outside secure contexts too.
 */
function randomPrefix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (b) => (b % 36).toString(36)).join("") + "-";
}

/** One client's requests: queued while disconnected, in flight while connected. */
export class Requests {
  /** Most requests held while disconnected. */
  readonly maxQueue: number;
  readonly #timeoutMs: number;
  readonly #idPrefix = randomPrefix();
  #nextId = 0;
  readonly #queue: PendingRequest[] = [];
  readonly #inflight = new Map<string, PendingRequest>();

  /**
   * @param maxQueue most requests held while disconnected
   * @param timeoutMs how long a request may wait for its reply, queue time included
   */
  constructor(maxQueue: number, timeoutMs: number) {
    this.maxQueue = maxQueue;
    this.#timeoutMs = timeoutMs;
  }

  /** A request id no other client produces. */
  newId(): string {
    return this.#idPrefix + (++this.#nextId).toString(36);
  }

  /** Whether the queue holds `maxQueue` requests. */
  get full(): boolean {
    return this.#queue.length >= this.maxQueue;
  }

  /** Whether a `join` of `room` is waiting in the queue. */
  joinQueued(room: string): boolean {
    return this.#queue.some((r) => r.frame.type === "join" && r.frame.room === room);
  }

  /** The request in flight with this id. */
  inflight(id: string | undefined): PendingRequest | undefined {
    return id === undefined ? undefined : this.#inflight.get(id);
  }

  /** Creates a request and starts its timeout; the caller sends or queues it. */
  track(
    frame: ClientFrame,
    kind: RequestKind,
    onReply: (reply: ServerMessage) => void,
    reject: (error: Error) => void,
  ): PendingRequest {
    const request: PendingRequest = {
      id: frame.id,
      kind,
      frame,
      onReply,
      reject,
      timer: undefined,
    };
    request.timer = setTimeout(() => {
      request.timer = undefined;
      if (request.retry !== undefined) clearTimeout(request.retry);
      request.retry = undefined;
      const index = this.#queue.indexOf(request);
      if (index !== -1) this.#queue.splice(index, 1);
      this.#inflight.delete(request.id);
      const room = "room" in frame ? frame.room : undefined;
      const message = `No reply to ${frame.type} within ${this.#timeoutMs} ms`;
      reject(new RealtimeError("timeout", message, { room }));
    }, this.#timeoutMs);
    return request;
  }

  /** Holds a request until {@linkcode Requests.flush}. */
  enqueue(request: PendingRequest): void {
    this.#queue.push(request);
  }

  /** Sends a request and waits for its reply. */
  send(socket: WebSocketLike, request: PendingRequest): void {
    this.#inflight.set(request.id, request);
    sendJson(socket, request.frame);
  }

  /** Sends every queued request, oldest first. */
  flush(socket: WebSocketLike): void {
    for (const request of this.#queue.splice(0)) this.send(socket, request);
  }

  /** Settles the request in flight with this id, if any, with `reply`. */
  reply(id: string | undefined, reply: ServerMessage): void {
    const request = this.inflight(id);
    if (request !== undefined) this.succeed(request, reply);
  }

  /** Removes a request from the tables and stops its timers, without settling its promise. */
  settle(request: PendingRequest): void {
    if (request.timer !== undefined) clearTimeout(request.timer);
    if (request.retry !== undefined) clearTimeout(request.retry);
    request.timer = undefined;
    request.retry = undefined;
    this.#inflight.delete(request.id);
  }

  /** Settles a request with its reply. */
  succeed(request: PendingRequest, reply: ServerMessage): void {
    this.settle(request);
    request.onReply(reply);
  }

  /** Settles a request with an error. */
  fail(request: PendingRequest, error: Error): void {
    this.settle(request);
    request.reject(error);
  }

  /**
   * Sends a publish again, same id, once the server's store may be back.
   * `socket` is asked when the wait is over.
   */
  retryLater(
    request: PendingRequest,
    retryAfterMs: number | undefined,
    socket: () => WebSocketLike | undefined,
  ): void {
    const wait = Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, retryAfterMs ?? 1000));
    if (request.retry !== undefined) clearTimeout(request.retry);
    request.retry = setTimeout(() => {
      request.retry = undefined;
      const current = socket();
      // Disconnected meanwhile: the request was requeued and goes out after the rejoin.
      if (current === undefined || !this.#inflight.has(request.id)) return;
      sendJson(current, request.frame);
    }, wait);
  }

  /**
   * The connection dropped (close `code`): a `join` is queued again, a `leave`
   * counts as done, a publish to a history room (`isHistoryRoom`) is queued
   * again, since the server deduplicates it, another publish and an `rpc`
   * reject with `disconnected`, and rejoins and refreshes die with the connection.
   */
  disconnected(code: number, isHistoryRoom: (room: string) => boolean): void {
    const requeue: PendingRequest[] = [];
    for (const request of [...this.#inflight.values()]) {
      const frame = request.frame;
      if (request.kind === "join") {
        requeue.push(request);
        this.#inflight.delete(request.id);
      } else if (frame.type === "leave") {
        // The next connection will not rejoin the room, which is what was asked.
        this.succeed(request, { type: "left", room: frame.room });
      } else if (frame.type === "message" && isHistoryRoom(frame.room)) {
        this.#inflight.delete(request.id);
        if (request.retry !== undefined) clearTimeout(request.retry);
        request.retry = undefined;
        requeue.push(request);
      } else if (frame.type === "message") {
        const message = `Connection lost before the server acknowledged the message (${code})`;
        this.fail(request, new RealtimeError("disconnected", message, { room: frame.room }));
      } else if (frame.type === "rpc") {
        // Not resent: the backend may have acted on it already.
        const message = `Connection lost before the server answered the call (${code})`;
        this.fail(request, new RealtimeError("disconnected", message));
      } else {
        this.settle(request);
      }
    }
    // They went out before anything still queued, so they go first again.
    this.#queue.unshift(...requeue);
  }

  /** The client closed: every request rejects with `closed`, but rejoins and refreshes quietly. */
  close(): void {
    for (const request of [...this.#queue, ...this.#inflight.values()]) {
      if (request.kind === "rejoin" || request.kind === "refresh") this.settle(request);
      else this.fail(request, new RealtimeError("closed", "The client is closed"));
    }
    this.#queue.length = 0;
    this.#inflight.clear();
  }
}
