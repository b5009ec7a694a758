/**
 * Small HTTP helpers shared by the routes: refusals, JSON errors, bounded
 * body reads, JSON bodies checked by a schema and constant-time secret
 * comparison.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { z } from "zod";

/** A one-line plain-text refusal (handshake answers). */
export function refuse(status: number, message: string, headers: HeadersInit = {}): Response {
  return new Response(`${message}\n`, {
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

/** A JSON body. */
export function json(status: number, body: unknown, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
  });
}

/** The API error shape: `{"error":{"code":..,"message":..}}`. */
export function apiError(
  status: number,
  code: string,
  message: string,
  headers: HeadersInit = {},
): Response {
  return json(status, { error: { code, message } }, headers);
}

/** The body was larger than allowed. */
export class BodyTooLargeError extends Error {
  /** @param limit the byte limit */
  constructor(readonly limit: number) {
    super(`request body over ${limit} bytes`);
    this.name = "BodyTooLargeError";
  }
}

/** The body did not arrive in full within the deadline. */
export class BodyTimeoutError extends Error {
  /** @param timeoutMs the deadline that passed */
  constructor(readonly timeoutMs: number) {
    super(`request body not complete within ${timeoutMs} ms`);
    this.name = "BodyTimeoutError";
  }
}

/** The read was abandoned because the server is shutting down. */
export class BodyAbortedError extends Error {
  constructor() {
    super("request body abandoned: the server is shutting down");
    this.name = "BodyAbortedError";
  }
}

/** Options for {@linkcode readBodyLimited}. */
export interface ReadBodyOptions {
  /** The whole body must have arrived this long after the read starts. @default 10_000 */
  timeoutMs?: number;
  /** Abandons the read at once (server shutdown). */
  signal?: AbortSignal;
}

/**
 * Reads a body as text, stopping as soon as it passes `limit` bytes, so a
 * client cannot make us buffer more than that whatever `Content-Length` says,
 * nor hold the request open by sending slowly: past `timeoutMs`, or when
 * `signal` aborts, the read stops and the body is cancelled.
 *
 * @throws {BodyTooLargeError} over `limit` bytes
 * @throws {BodyTimeoutError} not complete within `timeoutMs`
 * @throws {BodyAbortedError} `signal` aborted
 */
export async function readBodyLimited(
  req: Request,
  limit: number,
  options: ReadBodyOptions = {},
): Promise<string> {
  const { timeoutMs = 10_000, signal } = options;
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > limit) throw new BodyTooLargeError(limit);
  if (req.body === null) return "";
  if (signal?.aborted) throw new BodyAbortedError();
  const reader = req.body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  // Real time, not an injected clock: this waits for a real socket.
  const stopped = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BodyTimeoutError(timeoutMs)), timeoutMs);
    onAbort = () => reject(new BodyAbortedError());
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { value, done } = await Promise.race([reader.read(), stopped]);
      if (done) break;
      size += value.byteLength;
      if (size > limit) throw new BodyTooLargeError(limit);
      chunks.push(value);
    }
  } catch (err) {
    // Settles the pending read too, so nothing is left waiting on the socket.
    await reader.cancel().catch(() => {});
    throw err;
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}

/**
 * The API answer to a body that could not be read: `413` too large, `408`
 * too slow, `503` shutting down, else `400`. The slow and abandoned ones say
 * `Connection: close`: the rest of their body will never be read. (Deno
 * 2.9.6 still keeps such a connection open until its client sends the rest or
 * hangs up; the handler and its buffers are released at once.)
 */
export function bodyErrorResponse(err: unknown): Response {
  if (err instanceof BodyTooLargeError) {
    return apiError(413, "payload_too_large", `body over ${err.limit} bytes`);
  }
  if (err instanceof BodyTimeoutError) {
    return apiError(408, "request_timeout", `body not received within ${err.timeoutMs} ms`, {
      connection: "close",
    });
  }
  if (err instanceof BodyAbortedError) {
    return apiError(503, "unavailable", "server is shutting down", { connection: "close" });
  }
  return apiError(400, "bad_request", "the body could not be read");
}

/** Options for {@linkcode parseJsonBody}. */
export interface ParseJsonBodyOptions {
  /** Checks the text before it is parsed; a string is the 400's message. */
  precheck?: (text: string) => string | undefined;
  /**
   * Parses the text. @default {JSON.parse}
   */
  parse?: (text: string) => unknown;
  /**
   * The 400's message when `parse` throws.
   *
   * @default {() => "body is not valid JSON"}
   */
  notJson?: (err: unknown) => string;
}

/** Options for {@linkcode readJsonBody}: those of {@linkcode readBodyLimited} and the parsing. */
export interface ReadJsonBodyOptions extends ReadBodyOptions, ParseJsonBodyOptions {
  /** Most bytes read; more answers 413. */
  limit: number;
}

/**
 * Parses a body already read as JSON and checks it with `schema`. Resolves
 * to the parsed value, or to `400 bad_request` naming the first field at
 * fault (`room: ...`). For routes that need the raw text too (a signed body).
 */
export function parseJsonBody<S extends z.ZodType>(
  text: string,
  schema: S,
  options: ParseJsonBodyOptions = {},
): z.output<S> | Response {
  const { precheck, parse = JSON.parse, notJson = () => "body is not valid JSON" } = options;
  const refused = precheck?.(text);
  if (refused !== undefined) return apiError(400, "bad_request", refused);
  let value: unknown;
  try {
    value = parse(text);
  } catch (err) {
    return apiError(400, "bad_request", notJson(err));
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  return apiError(400, "bad_request", `${issue?.path.join(".") || "body"}: ${issue?.message}`);
}

/**
 * Reads a request body (bounded as {@linkcode readBodyLimited} is), parses
 * it as JSON and checks it with `schema` ({@linkcode parseJsonBody}).
 * Resolves to the parsed value, or to the API answer to hand back: the body
 * error of {@linkcode bodyErrorResponse}, or `400 bad_request` naming the
 * first field at fault (`room: ...`).
 *
 * @example
 * ```ts ignore
 * const body = await readJsonBody(req, PublishBody, { limit: 65536 });
 * if (body instanceof Response) return body;
 * ```
 */
export async function readJsonBody<S extends z.ZodType>(
  req: Request,
  schema: S,
  options: ReadJsonBodyOptions,
): Promise<z.output<S> | Response> {
  const { limit, precheck, parse, notJson, ...readOptions } = options;
  let text: string;
  try {
    text = await readBodyLimited(req, limit, readOptions);
  } catch (err) {
    return bodyErrorResponse(err);
  }
  return parseJsonBody(text, schema, {
    ...(precheck === undefined ? {} : { precheck }),
    ...(parse === undefined ? {} : { parse }),
    ...(notJson === undefined ? {} : { notJson }),
  });
}

/** The credential of `Authorization: Bearer <x>`, or null. */
export function bearer(req: Request): string | null {
  const match = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(req.headers.get("authorization") ?? "");
  return match?.[1] ?? null;
}

/** Compares two secrets in time independent of where they differ (hashes first, so lengths match). */
export function secretsEqual(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}
