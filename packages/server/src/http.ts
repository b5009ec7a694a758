/**
 * One authorized JSON call to the server's HTTP API, retried while the
 * server answers 503 with a `Retry-After` (its store is down, or it is
 * draining) and after network failures, within a retry budget.
 *
 * @module
 */
import { RealtimeApiError } from "./errors.ts";

/** A `fetch`-compatible function, so that tests and old runtimes can pass their own. */
export type FetchLike = (
  input: string,
  init: {
    method: string;
    headers: Record<string, string>;
    body?: string;
    signal?: AbortSignal;
  },
) => Promise<{
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

/** How {@linkcode callApi} reaches the server. */
export interface Transport {
  /** The server's base URL (`https://rt.example.com`). */
  readonly baseUrl: URL;
  /** The `API_KEY`, or an admin JWT. */
  readonly apiKey: string;
  /** The fetch implementation. */
  readonly fetch: FetchLike;
  /** Attempts after the first, for 503 and network failures. */
  readonly maxRetries: number;
  /** Longest wait between attempts, in ms (a longer `Retry-After` is capped). */
  readonly maxRetryDelayMs: number;
  /** Per-attempt timeout, in ms. */
  readonly timeoutMs: number;
}

/** One API call. */
export interface ApiCall {
  method: "GET" | "POST" | "DELETE";
  /** Path with query, e.g. `/api/history?room=a`. */
  path: string;
  body?: unknown;
  /** Whether a network failure may be retried (the call is idempotent). */
  idempotent: boolean;
}

/** The parsed body of a 2xx answer. */
export type ApiResult = { status: number; body: Record<string, unknown> };

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `Retry-After` in ms: delta-seconds or an HTTP date; `undefined` when absent or unreadable. */
export function parseRetryAfter(
  value: string | null,
  nowMs: number = Date.now(),
): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

async function attempt(
  transport: Transport,
  call: ApiCall,
): Promise<ApiResult | RealtimeApiError> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${transport.apiKey}`,
    accept: "application/json",
  };
  const init: Parameters<FetchLike>[1] = { method: call.method, headers };
  if (call.body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(call.body);
  }
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), transport.timeoutMs);
  init.signal = controller.signal;
  try {
    const res = await transport.fetch(
      new URL(call.path, transport.baseUrl).href,
      init,
    );
    const text = await res.text();
    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = text === "" ? {} : JSON.parse(text);
      if (typeof parsed === "object" && parsed !== null) {
        body = parsed as Record<string, unknown>;
      }
    } catch {
      body = {};
    }
    if (res.status >= 200 && res.status < 300) {
      return { status: res.status, body };
    }
    const error = body.error as
      | { code?: unknown; message?: unknown }
      | undefined;
    return new RealtimeApiError(
      typeof error?.code === "string" ? error.code : `http_${res.status}`,
      typeof error?.message === "string" ? error.message : `HTTP ${res.status}`,
      {
        status: res.status,
        retryAfterMs: parseRetryAfter(res.headers.get("retry-after")),
      },
    );
  } catch (err) {
    const timedOut = controller.signal.aborted;
    return new RealtimeApiError(
      timedOut ? "timeout" : "network",
      timedOut
        ? `No answer from ${transport.baseUrl.origin} within ${transport.timeoutMs} ms`
        : `Could not reach ${transport.baseUrl.origin}`,
      { status: 0, cause: err },
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Calls the API: resolves with a 2xx answer's body, rejects with a
 * {@linkcode RealtimeApiError}. A 503 is retried after its `Retry-After`
 * (1 s without one); a network failure or timeout only for idempotent calls
 * (a publish with an `idempotencyKey`, reads, revocations), with doubling
 * delays from 250 ms.
 */
export async function callApi(
  transport: Transport,
  call: ApiCall,
): Promise<ApiResult> {
  let backoffMs = 250;
  for (let tries = 0;; tries++) {
    const result = await attempt(transport, call);
    if (!(result instanceof RealtimeApiError)) return result;
    const retryable = result.status === 503 ||
      (result.status === 0 && call.idempotent);
    if (!retryable || tries >= transport.maxRetries) throw result;
    const wait = result.status === 503 ? result.retryAfterMs ?? 1000 : backoffMs;
    backoffMs *= 2;
    await sleep(Math.min(wait, transport.maxRetryDelayMs));
  }
}
