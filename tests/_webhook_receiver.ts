/**
 * A real webhook receiver for tests: `Deno.serve` on 127.0.0.1 and port 0,
 * which checks every request's signature (native or Pusher), keeps what it
 * was sent, and answers as the test scripts it (fail twice, then succeed).
 *
 * @module
 */
import { hmacHex, verifyBody } from "../lib/webhooks/signature.ts";

/** One request the receiver got. */
export interface Received {
  /** The raw body. */
  body: string;
  /** The parsed body. */
  json: { id?: string; time_ms: number; events: Record<string, unknown>[] };
  headers: Headers;
  /** Whether the signature was valid. */
  signed: boolean;
  /** The full request URL (path and query). */
  url: string;
  /** The status it was answered with. */
  status: number;
}

/** Options for {@linkcode startReceiver}. */
export interface ReceiverOptions {
  /** The secret signatures are checked with. */
  secret: string;
  /** `native`: `X-Realtime-Signature`; `pusher`: `X-Pusher-Signature`. @default "native" */
  scheme?: "native" | "pusher";
  /**
   * The answer to request number `n` (0-based); `undefined`: 200. Return a
   * Response for full control (a redirect, a huge or slow body).
   */
  answer?: (n: number, request: Request) => number | Response | undefined;
}

/** A running receiver; `await using` stops it. */
export interface Receiver extends AsyncDisposable {
  /** `http://127.0.0.1:<port>/hooks` */
  readonly url: string;
  /** Every request, in order of arrival. */
  readonly requests: Received[];
  /** Every event of every request answered 2xx, in order. */
  accepted(): Record<string, unknown>[];
  /** Stops the server. */
  close(): Promise<void>;
}

/** Starts a receiver. */
export function startReceiver(options: ReceiverOptions): Receiver {
  const { secret, scheme = "native", answer = () => undefined } = options;
  const requests: Received[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = await req.text();
    const n = requests.length;
    const signed = scheme === "native"
      ? verifyBody(secret, body, req.headers.get("x-realtime-signature"))
      : req.headers.get("x-pusher-signature") === hmacHex(secret, body);
    const planned = answer(n, req);
    const response = planned instanceof Response
      ? planned
      : new Response(null, { status: planned ?? 200 });
    requests.push({
      body,
      json: JSON.parse(body),
      headers: req.headers,
      signed,
      url: req.url,
      status: response.status,
    });
    return response;
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await server.shutdown();
  };
  return {
    url: `http://127.0.0.1:${server.addr.port}/hooks`,
    requests,
    accepted: () =>
      requests.filter((r) => r.status >= 200 && r.status < 300).flatMap((r) => r.json.events),
    close,
    [Symbol.asyncDispose]: close,
  };
}
