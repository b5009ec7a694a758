/**
 * The hooks' wire contract (issue 18): what the server POSTs to each hook
 * and the zod shapes of the answers it accepts. An answer that does not
 * parse here is a failure, never trusted in part.
 *
 * @module
 */
import { z } from "zod";
import { InfoClaim, type PresenceInfo, type Principal } from "../core/auth.ts";
import type { JsonValue } from "../protocols/native/protocol.ts";

/** The four hooks. */
export const HOOK_NAMES = ["connect", "join", "publish", "rpc"] as const;
/** One hook's name (the `hook` label of its metrics). */
export type HookName = typeof HOOK_NAMES[number];

/** What every hook request carries. The token itself never is. */
export interface HookRequest {
  /** The token's `sub`. */
  userId: string;
  /** The verified claims the server read from the token. */
  claims: HookClaims;
  /** The connection's id: the one its `welcome` names. */
  connectionId: string;
  /** The client's address. */
  ip: string;
  /** The room asked for (join, publish). */
  room?: string;
  /** The message's payload (publish) or the call's argument (rpc). */
  payload?: JsonValue;
  /** The method called (rpc). */
  method?: string;
}

/** The claims a hook request carries: those the server verified and reads. */
export interface HookClaims {
  sub: string;
  exp: number | null;
  iat?: number;
  jti?: string;
  rooms: readonly string[];
  rooms_readonly: readonly string[];
  roles: readonly string[];
  info?: PresenceInfo;
}

/** The claims of `principal`, as a hook request carries them. */
export function claimsOf(principal: Principal): HookClaims {
  return {
    sub: principal.userId,
    exp: principal.expiresAt,
    ...(principal.iat === undefined ? {} : { iat: principal.iat }),
    ...(principal.jti === undefined ? {} : { jti: principal.jti }),
    rooms: principal.rooms,
    rooms_readonly: principal.roomsReadonly,
    roles: principal.roles,
    ...(principal.info === undefined ? {} : { info: principal.info }),
  };
}

/** Longest `reason` a backend may give; it goes back to the client. */
export const MAX_REASON_LENGTH = 200;

const Reason = z.string().max(MAX_REASON_LENGTH);
const Info = InfoClaim.refine((v) => v !== null, "info must be a JSON object");
const Patterns = z.array(z.string().min(1).max(256)).max(256);

/**
 * Connect: `{allow:true, info?, rooms?}` or `{allow:false, status?, reason?}`
 * (status 400–499, default 403).
 */
export const ConnectAnswer = z.discriminatedUnion("allow", [
  z.object({ allow: z.literal(true), info: Info.optional(), rooms: Patterns.optional() }),
  z.object({
    allow: z.literal(false),
    status: z.number().int().min(400).max(499).optional(),
    reason: Reason.optional(),
  }),
]);
/** A connect hook's answer. */
export type ConnectAnswer = z.infer<typeof ConnectAnswer>;

/** Longest `cacheSec` a join answer may ask for: a day. */
export const MAX_CACHE_SEC = 86_400;

/** Join: `{allow, readonly?, presence?, cacheSec?, reason?}`. */
export const JoinAnswer = z.object({
  allow: z.boolean(),
  readonly: z.boolean().optional(),
  presence: Info.optional(),
  cacheSec: z.number().int().min(0).max(MAX_CACHE_SEC).optional(),
  reason: Reason.optional(),
});
/** A join hook's answer. */
export type JoinAnswer = z.infer<typeof JoinAnswer>;

const Json = z.custom<JsonValue>((v) => v !== undefined, "payload is required");

/** Publish: `{allow, payload?, reason?}` (`payload` replaces the message's). */
export const PublishAnswer = z.object({
  allow: z.boolean(),
  payload: Json.optional(),
  reason: Reason.optional(),
});
/** A publish hook's answer. */
export type PublishAnswer = z.infer<typeof PublishAnswer>;

/** Longest `code` an RPC error may carry. */
export const MAX_RPC_CODE_LENGTH = 64;

/**
 * RPC: `{payload}` or `{error:{message, code?}}`. `code` is the backend's:
 * one of {@linkcode RPC_ERROR_CODES} reaches the client as its code, any
 * other as `rpc_error` with the code before the message.
 */
export const RpcAnswer = z.union([
  z.object({
    error: z.object({
      message: Reason,
      code: z.string().min(1).max(MAX_RPC_CODE_LENGTH).optional(),
    }),
  }),
  z.object({ payload: Json }),
]);

/** The codes a backend's RPC error may give the client as they are. */
export const RPC_ERROR_CODES = [
  "bad_request",
  "forbidden",
  "not_found",
  "rate_limited",
  "unavailable",
  "rpc_error",
] as const;
/** An RPC hook's answer. */
export type RpcAnswer = z.infer<typeof RpcAnswer>;
