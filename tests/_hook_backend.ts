/**
 * A real hook backend for tests: `Deno.serve` on loopback, port 0. Each
 * request is recorded (path, headers, raw body, whether its
 * `X-Realtime-Signature` verifies) and answered by the test's handler.
 *
 * @module
 */
import { SIGNATURE_HEADER, verifyBody } from "../lib/webhooks/signature.ts";

/** One request the backend received. */
export interface HookCall {
  path: string;
  /** The full request URL. */
  url: string;
  headers: Headers;
  body: string;
  /** The parsed body. */
  json: Record<string, unknown>;
  /** Whether the signature verified with the backend's secret. */
  signed: boolean;
}

/** Answers one call; the default answers `{allow:true}`. */
export type HookHandler = (call: HookCall) => Response | Promise<Response>;

/** A running backend; disposing it shuts it down. */
export interface HookBackend extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly calls: HookCall[];
  /** The calls to one path (`/connect`, `/join`, …). */
  callsTo(path: string): HookCall[];
  /** Replaces the handler. */
  handle(handler: HookHandler): void;
}

/** A JSON answer. */
export function answer(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** Starts a backend that verifies signatures with `secret`. */
export function startHookBackend(secret: string, handler?: HookHandler): HookBackend {
  const calls: HookCall[] = [];
  let current: HookHandler = handler ?? (() => answer({ allow: true }));
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const body = await req.text();
    const url = new URL(req.url);
    const call: HookCall = {
      path: url.pathname,
      url: req.url,
      headers: req.headers,
      body,
      json: JSON.parse(body),
      signed: verifyBody(secret, body, req.headers.get(SIGNATURE_HEADER)),
    };
    calls.push(call);
    return await current(call);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    calls,
    callsTo: (path) => calls.filter((c) => c.path === path),
    handle(next) {
      current = next;
    },
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}
