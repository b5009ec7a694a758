/**
 * One POST of one batch to a receiver, and what its answer means: sent,
 * retry later, or rejected for good. Never blocks: the whole exchange
 * (connect, headers, answer body) has one deadline; redirects are never
 * followed; the answer's body is read up to a bound and discarded.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";

/** What became of one attempt. */
export interface DeliveryResult {
  /** `sent`: 2xx; `retry`: network error, timeout, 5xx, 408 or 429; `reject`: any other answer. */
  outcome: "sent" | "retry" | "reject";
  /** The receiver's status, when it answered. */
  status?: number;
  /** The receiver's `Retry-After`, in ms, when it sent a valid one. */
  retryAfterMs?: number;
  /** What happened, for the audit log (never the URL's credentials, never the body). */
  detail: string;
}

/** Options for {@linkcode postBatch}. */
export interface PostOptions {
  /** The deadline of the whole exchange, answer body included, in ms. */
  timeoutMs: number;
  /** The fetch to use. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Most answer-body bytes read before the connection is cut. @default 65_536 */
  maxAnswerBytes?: number;
  /** Aborts the attempt (the engine is closing). */
  signal?: AbortSignal;
}

/**
 * POSTs `body` to `url`. A receiver that answers slowly (a byte a second) or
 * not at all is cut off at `timeoutMs`; a redirect is a rejection (never
 * followed: the receiver's URL is configured, and following could carry the
 * signature elsewhere); a huge answer is cut at `maxAnswerBytes` and its
 * status decides.
 *
 * @example
 * ```ts ignore
 * const result = await postBatch("https://app.example/hooks", "{}", {}, { timeoutMs: 5000 });
 * if (result.outcome === "retry") console.log(result.detail, result.retryAfterMs);
 * ```
 */
export async function postBatch(
  url: string,
  body: string,
  headers: Record<string, string>,
  options: PostOptions,
): Promise<DeliveryResult> {
  const { timeoutMs, fetch: doFetch = fetch, maxAnswerBytes = 65_536, signal } = options;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  const onAbort = () => controller.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const response = await doFetch(url, {
      method: "POST",
      body,
      headers: { "content-type": "application/json", ...headers },
      redirect: "manual",
      signal: controller.signal,
    });
    await drain(response, maxAnswerBytes);
    return judge(response);
  } catch (err) {
    const detail = timedOut
      ? `no complete answer within ${timeoutMs} ms`
      : signal?.aborted
      ? "aborted: the server is closing"
      : `network error: ${errorMessage(err)}`;
    return { outcome: "retry", detail };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/** Reads and discards up to `max` bytes of the answer, then lets the connection go. */
async function drain(response: Response, max: number): Promise<void> {
  const reader = response.body?.getReader();
  if (reader === undefined) return;
  let read = 0;
  try {
    while (read <= max) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
    }
    // Over the bound: the rest is not worth reading; the status decides.
    await reader.cancel();
  } finally {
    reader.releaseLock();
  }
}

function judge(response: Response): DeliveryResult {
  const { status } = response;
  if (status >= 200 && status < 300) return { outcome: "sent", status, detail: `HTTP ${status}` };
  if (status >= 500 || status === 408 || status === 429) {
    const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
    return {
      outcome: "retry",
      status,
      detail: `HTTP ${status}`,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    };
  }
  if (status >= 300 && status < 400) {
    return {
      outcome: "reject",
      status,
      detail: `HTTP ${status}: redirects are not followed; set the receiver's final URL`,
    };
  }
  return { outcome: "reject", status, detail: `HTTP ${status}` };
}

/** `Retry-After` as delay-seconds or an HTTP date, in ms from now; undefined when absent or invalid. */
export function parseRetryAfter(value: string | null, nowMs = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
