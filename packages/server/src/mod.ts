/**
 * The backend SDK of the realtime server, for Node ≥ 20, Deno and Bun:
 * {@linkcode RealtimeApi} (publish with `idempotencyKey`, revoke and
 * unrevoke, history, presence; 503 `Retry-After` retried),
 * {@linkcode mintToken} (HS/RS/PS/ES via `jose`) and
 * {@linkcode verifyWebhook} (the `X-Realtime-Signature` scheme).
 *
 * @example
 * ```ts ignore
 * import { mintToken, RealtimeApi } from "@realtime/server-sdk";
 * const api = new RealtimeApi({ url: "http://localhost:8080", apiKey: process.env.API_KEY! });
 * const token = await mintToken(process.env.JWT_SECRET!, { sub: "alice", rooms: ["chat:*"] });
 * await api.publish("chat:lobby", { text: "hello" });
 * ```
 *
 * @module
 */
export { RealtimeApi, type RealtimeApiOptions } from "./api.ts";
export { RealtimeApiError, type RealtimeApiErrorOptions } from "./errors.ts";
export { type FetchLike, parseRetryAfter } from "./http.ts";
export { mintToken, type MintTokenOptions, type SigningKey, type TokenAlgorithm } from "./token.ts";
export {
  hmacSha256Hex,
  SIGNATURE_HEADER,
  signWebhook,
  verifyWebhook,
  type VerifyWebhookOptions,
} from "./webhook.ts";
export type * from "./types.ts";
