/**
 * One hook's caller: POSTs a signed JSON request and accepts only a 2xx JSON
 * answer of the hook's zod shape, complete within `HOOK_TIMEOUT_MS` (headers
 * and body), at most 64 KiB, without a redirect (never followed). Calls past
 * the concurrency cap, and every call while the circuit breaker is open, fail
 * at once. Every call is counted by result and timed; failures and breaker
 * changes are audited.
 *
 * @module
 */
import type { z } from "zod";
import type { AuditSink } from "../audit.ts";
import type { Clock } from "../clock.ts";
import { errorMessage } from "../errors.ts";
import { parseJsonRefusingProto } from "../core/json.ts";
import { SIGNATURE_HEADER, signBody } from "../webhooks/signature.ts";
import { CircuitBreaker } from "./breaker.ts";
import type { HookName, HookRequest } from "./contract.ts";

/** Largest answer body read, in bytes; past it the answer is cut off and fails. */
export const MAX_HOOK_ANSWER_BYTES = 64 * 1024;

/** Why a call failed (the `result` label of `realtime_hook_calls_total`). */
export type HookFailure =
  | "timeout"
  | "network"
  | "status"
  | "redirect"
  | "too_large"
  | "invalid_json"
  | "bad_shape"
  | "busy"
  | "open";

/** A call's outcome: the parsed answer, or why there is none. */
export type HookResult<T> =
  | { ok: true; value: T }
  | { ok: false; failure: HookFailure; detail: string };

/** Told of every call: its hook, its result and how long it took. */
export type HookObserver = (hook: HookName, result: "ok" | HookFailure, seconds: number) => void;

/** Options for {@linkcode HookCaller}. */
export interface HookCallerOptions {
  hook: HookName;
  /** The hook's URL (`HOOK_*_URL`). */
  url: string;
  /** `WEBHOOK_SECRET`: signs every request. */
  secret: string;
  /** `HOOK_TIMEOUT_MS`. */
  timeoutMs: number;
  /** `HOOK_CONCURRENCY`: calls in flight at most. */
  concurrency: number;
  /** `HOOK_BREAKER_FAILURES`. */
  breakerFailures: number;
  /** `HOOK_BREAKER_COOLDOWN_MS`. */
  breakerCooldownMs: number;
  clock: Clock;
  audit: AuditSink;
  /** @default none */
  observe?: HookObserver;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
}

/**
 * Calls one hook.
 *
 * @example
 * ```ts ignore
 * const result = await caller.call(request, JoinAnswer);
 * if (result.ok && result.value.allow) grant();
 * ```
 */
export class HookCaller {
  readonly #o: HookCallerOptions;
  readonly #breaker: CircuitBreaker;
  #inFlight = 0;
  /** The calls in flight, aborted by {@linkcode close}. */
  readonly #controllers = new Set<AbortController>();
  #closed = false;

  /** @param options the hook, its settings and services */
  constructor(options: HookCallerOptions) {
    this.#o = options;
    this.#breaker = new CircuitBreaker({
      failures: options.breakerFailures,
      cooldownMs: options.breakerCooldownMs,
      clock: options.clock,
      onChange: (state) => options.audit.record("hook_breaker", { hook: options.hook, state }),
    });
  }

  /** The hook this caller calls. */
  get hook(): HookName {
    return this.#o.hook;
  }

  /** Calls in flight now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** POSTs `request` and parses the answer with `schema`; never throws. */
  async call<T>(request: HookRequest, schema: z.ZodType<T>): Promise<HookResult<T>> {
    const started = performance.now();
    let result: HookResult<T>;
    if (this.#closed) {
      result = { ok: false, failure: "network", detail: "the server is closing" };
    } else if (this.#inFlight >= this.#o.concurrency) {
      result = { ok: false, failure: "busy", detail: `${this.#o.concurrency} calls in flight` };
    } else if (!this.#breaker.tryAcquire()) {
      result = { ok: false, failure: "open", detail: "circuit breaker open" };
    } else {
      this.#inFlight++;
      try {
        result = await this.#exchange(request, schema);
      } finally {
        this.#inFlight--;
      }
      if (result.ok) this.#breaker.succeeded();
      else this.#breaker.failed();
    }
    this.#o.observe?.(
      this.#o.hook,
      result.ok ? "ok" : result.failure,
      (performance.now() - started) / 1000,
    );
    if (!result.ok) {
      this.#o.audit.record("hook_failed", {
        hook: this.#o.hook,
        failure: result.failure,
        detail: result.detail,
        user: request.userId,
        connection: request.connectionId,
      });
    }
    return result;
  }

  /** Aborts the calls in flight (they fail) and fails every later call at once. */
  close(): void {
    this.#closed = true;
    for (const controller of this.#controllers) controller.abort();
  }

  async #exchange<T>(request: HookRequest, schema: z.ZodType<T>): Promise<HookResult<T>> {
    const { url, secret, timeoutMs, clock, fetch: doFetch = fetch } = this.#o;
    const body = JSON.stringify(request);
    const controller = new AbortController();
    this.#controllers.add(controller);
    let timedOut = false;
    const timer = clock.setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    try {
      const response = await doFetch(url, {
        method: "POST",
        body,
        headers: {
          "content-type": "application/json",
          [SIGNATURE_HEADER]: signBody(secret, body, clock.now()),
        },
        redirect: "manual",
        signal: controller.signal,
      });
      return await judge(response, schema, controller.signal);
    } catch (err) {
      if (timedOut) {
        return {
          ok: false,
          failure: "timeout",
          detail: `no complete answer within ${timeoutMs} ms`,
        };
      }
      return { ok: false, failure: "network", detail: errorMessage(err) };
    } finally {
      clock.clearTimeout(timer);
      // Whatever is left of the answer is not wanted.
      controller.abort();
      this.#controllers.delete(controller);
    }
  }
}

async function judge<T>(
  response: Response,
  schema: z.ZodType<T>,
  signal: AbortSignal,
): Promise<HookResult<T>> {
  const { status } = response;
  if (status >= 300 && status < 400) {
    await response.body?.cancel();
    return { ok: false, failure: "redirect", detail: `HTTP ${status}: redirects are not followed` };
  }
  if (status < 200 || status >= 300) {
    await response.body?.cancel();
    return { ok: false, failure: "status", detail: `HTTP ${status}` };
  }
  const bytes = await readBounded(response, MAX_HOOK_ANSWER_BYTES, signal);
  if (bytes === null) {
    return {
      ok: false,
      failure: "too_large",
      detail: `answer over ${MAX_HOOK_ANSWER_BYTES} bytes`,
    };
  }
  let value: unknown;
  try {
    value = parseJsonRefusingProto(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    return { ok: false, failure: "invalid_json", detail: errorMessage(err).slice(0, 200) };
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join(".") || "(root)";
    return { ok: false, failure: "bad_shape", detail: `${where}: ${issue?.message ?? "invalid"}` };
  }
  return { ok: true, value: parsed.data };
}

/** The answer's bytes, or null once they pass `max` (reading stops there). */
async function readBounded(
  response: Response,
  max: number,
  signal: AbortSignal,
): Promise<Uint8Array | null> {
  const reader = response.body?.getReader();
  if (reader === undefined) return new Uint8Array();
  // A body that stalls must not outlive the deadline, whatever the stream does with the signal.
  const onAbort = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  const chunks: Uint8Array[] = [];
  let read = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (signal.aborted) throw signal.reason;
      if (done) break;
      read += value.byteLength;
      if (read > max) {
        await reader.cancel();
        return null;
      }
      chunks.push(value);
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
  const all = new Uint8Array(read);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return all;
}
