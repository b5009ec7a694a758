/**
 * The server's HTTP API for backends, typed: publish to rooms, revoke and
 * unrevoke users or tokens, read history and presence. One
 * {@linkcode RealtimeApi} per server (or load balancer), holding the API key.
 *
 * @module
 */
import { type ApiCall, callApi, type FetchLike, type Transport } from "./http.ts";
import { RealtimeApiError } from "./errors.ts";
import type {
  HistoryOptions,
  HistoryPage,
  PresenceList,
  PublishOptions,
  PublishResult,
  RevocationList,
  RevokeOptions,
  RevokeResult,
  RevokeTarget,
} from "./types.ts";

/** Options for {@linkcode RealtimeApi}. */
export interface RealtimeApiOptions {
  /** The server's base URL, e.g. `https://rt.example.com` (`ws(s):` is accepted too). */
  url: string | URL;
  /** The server's `API_KEY`, or a JWT whose roles include its `ADMIN_ROLE`. */
  apiKey: string;
  /** Attempts after the first when the server answers 503 (and, for idempotent calls, on network failure). @default 3 */
  maxRetries?: number;
  /** Longest wait between attempts, in ms; a longer `Retry-After` is cut to it. @default 10000 */
  maxRetryDelayMs?: number;
  /** Per-attempt timeout, in ms. @default 10000 */
  timeoutMs?: number;
  /** The fetch implementation. @default globalThis.fetch */
  fetch?: FetchLike;
}

const ROOM = /^[A-Za-z0-9_\-.:@/]{1,128}$/;

function assertRoom(operation: string, room: string): void {
  if (typeof room !== "string" || !ROOM.test(room)) {
    throw new TypeError(
      `Cannot ${operation}: room must be 1-128 characters of A-Z a-z 0-9 _ - . : @ /, current value is ${
        JSON.stringify(room)
      }`,
    );
  }
}

function targetOf(target: RevokeTarget): { userId: string } | { jti: string } {
  if ("userId" in target && target.userId !== undefined) {
    return { userId: target.userId };
  }
  if ("jti" in target && target.jti !== undefined) return { jti: target.jti };
  throw new TypeError(
    "Cannot revoke: give userId or jti, current value has neither",
  );
}

/**
 * A typed client of the server's HTTP API. Every method rejects with a
 * {@linkcode RealtimeApiError}; 503 answers are retried after their
 * `Retry-After`, up to `maxRetries`.
 *
 * @example
 * ```ts ignore
 * import { RealtimeApi } from "@realtime/server-sdk";
 * const api = new RealtimeApi({ url: "https://rt.example.com", apiKey: process.env.API_KEY! });
 * const { recipients } = await api.publish("chat:lobby", { text: "deployed" });
 * ```
 */
export class RealtimeApi {
  readonly #transport: Transport;

  /**
   * @param options URL, key, retries, timeout
   * @throws {TypeError} for a malformed URL, an empty key, or no fetch
   */
  constructor(options: RealtimeApiOptions) {
    const { maxRetries = 3, maxRetryDelayMs = 10_000, timeoutMs = 10_000 } = options;
    const fetchImpl = options.fetch ??
      (globalThis as { fetch?: FetchLike }).fetch?.bind(globalThis) as
        | FetchLike
        | undefined;
    if (fetchImpl === undefined) {
      throw new TypeError(
        "Cannot create the API client: no fetch, current value is undefined",
      );
    }
    if (typeof options.apiKey !== "string" || options.apiKey === "") {
      throw new TypeError("Cannot create the API client: apiKey is required");
    }
    const baseUrl = new URL(String(options.url));
    if (baseUrl.protocol === "ws:") baseUrl.protocol = "http:";
    if (baseUrl.protocol === "wss:") baseUrl.protocol = "https:";
    this.#transport = {
      baseUrl,
      apiKey: options.apiKey,
      fetch: fetchImpl,
      maxRetries,
      maxRetryDelayMs,
      timeoutMs,
    };
  }

  #call(call: ApiCall) {
    return callApi(this.#transport, call);
  }

  /**
   * Publishes `payload` to `room` (`POST /api/publish`), delivered to its
   * members like a client's message, `from` the key's caller (`"server"`).
   * With `idempotencyKey`, a retry of the same key within the server's
   * `DEDUP_WINDOW_SEC` is not delivered again and answers `duplicate: true`;
   * only then are network failures retried.
   *
   * @example
   * ```ts ignore
   * await api.publish("orders:42", { status: "shipped" }, { idempotencyKey: "order-42-shipped" });
   * ```
   */
  async publish(
    room: string,
    payload: unknown,
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    assertRoom("publish", room);
    if (payload === undefined) {
      throw new TypeError(
        "Cannot publish: payload is required, current value is undefined",
      );
    }
    const body: Record<string, unknown> = { room, payload };
    if (options.idempotencyKey !== undefined) {
      body.idempotencyKey = options.idempotencyKey;
    }
    const { body: answer } = await this.#call({
      method: "POST",
      path: "/api/publish",
      body,
      idempotent: options.idempotencyKey !== undefined,
    });
    const result: PublishResult = {
      recipients: Number(answer.recipients ?? 0),
      duplicate: answer.duplicate === true,
    };
    if (typeof answer.offset === "number") result.offset = answer.offset;
    if (typeof answer.epoch === "string") result.epoch = answer.epoch;
    return result;
  }

  /**
   * Revokes a user (every token issued up to now) or one token (`jti`)
   * everywhere (`POST /api/revoke`): their connections close with 4403 and
   * the tokens are refused until `untilSec` (default: the server's
   * `REVOCATION_TTL_SEC`).
   */
  async revoke(
    target: RevokeTarget,
    options: RevokeOptions = {},
  ): Promise<RevokeResult> {
    const body: Record<string, unknown> = { ...targetOf(target) };
    if (options.reason !== undefined) body.reason = options.reason;
    if (options.untilSec !== undefined) body.untilSec = options.untilSec;
    const { body: answer } = await this.#call({
      method: "POST",
      path: "/api/revoke",
      body,
      idempotent: true,
    });
    return {
      closed: Number(answer.closed ?? 0),
      until: Number(answer.until ?? 0),
    };
  }

  /**
   * Lifts a revocation (`DELETE /api/revoke`). Resolves `true` when one was
   * lifted, `false` when none was in force.
   */
  async unrevoke(target: RevokeTarget): Promise<boolean> {
    try {
      await this.#call({
        method: "DELETE",
        path: "/api/revoke",
        body: targetOf(target),
        idempotent: true,
      });
      return true;
    } catch (err) {
      if (
        err instanceof RealtimeApiError && err.status === 404 &&
        /^no revocation/.test(err.message)
      ) {
        return false;
      }
      throw err;
    }
  }

  /** The revocations in force, newest first (`GET /api/revoke`). */
  async revocations(options: { limit?: number } = {}): Promise<RevocationList> {
    const query = options.limit === undefined ? "" : `?limit=${options.limit}`;
    const { body } = await this.#call({
      method: "GET",
      path: `/api/revoke${query}`,
      idempotent: true,
    });
    return body as unknown as RevocationList;
  }

  /**
   * A page of a history room's past (`GET /api/history`): the newest
   * `limit` messages before offset `before`, oldest first, as members got them.
   *
   * @example Page backwards
   * ```ts ignore
   * let page = await api.history("chat:lobby", { limit: 100 });
   * while (page.more) page = await api.history("chat:lobby", { before: page.messages[0]!.offset });
   * ```
   */
  async history<T = unknown>(
    room: string,
    options: HistoryOptions = {},
  ): Promise<HistoryPage<T>> {
    assertRoom("read history", room);
    const query = new URLSearchParams({ room });
    if (options.limit !== undefined) query.set("limit", String(options.limit));
    if (options.before !== undefined) {
      query.set("before", String(options.before));
    }
    const { body } = await this.#call({
      method: "GET",
      path: `/api/history?${query}`,
      idempotent: true,
    });
    return body as unknown as HistoryPage<T>;
  }

  /** Who is in a presence room, across every node (`GET /api/presence`). */
  async presence(room: string): Promise<PresenceList> {
    assertRoom("read presence", room);
    const query = new URLSearchParams({ room });
    const { body } = await this.#call({
      method: "GET",
      path: `/api/presence?${query}`,
      idempotent: true,
    });
    return body as unknown as PresenceList;
  }
}
