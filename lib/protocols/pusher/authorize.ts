/**
 * Pusher's proofs, checked for one connection: a subscription's signature
 * (`private-`: over `socket_id:channel`; `presence-`: over
 * `socket_id:channel:channel_data`, whose member is read and bounded here)
 * and a `pusher:signin`'s (over `socket_id::user::user_data`). Every
 * comparison is in constant time (signature.ts).
 *
 * @module
 */
import { z } from "zod";
import type { PresenceInfo } from "../../core/auth.ts";
import { utf8ByteLength } from "../../core/json.ts";
import type { PusherApp } from "./apps.ts";
import type { ChannelKind } from "./channel_names.ts";
import { toPresenceInfo } from "./codec.ts";
import { verifyAuth } from "./signature.ts";

/** Longest presence `user_id` or signed-in user `id` (Pusher's limit). */
export const MAX_USER_ID_LENGTH = 128;

const UserId = z.union([z.string(), z.number()]).transform(String).pipe(
  z.string().min(1).max(MAX_USER_ID_LENGTH),
);

const ChannelData = z.object({ user_id: UserId, user_info: z.unknown().optional() });

const UserData = z.object({ id: UserId });

/** A presence channel's member, from its `channel_data`. */
export interface ChannelMember {
  readonly userId: string;
  readonly info: PresenceInfo | undefined;
}

/** Why a subscription is refused, as `pusher:subscription_error` says it. */
export interface SubscriptionRefusal {
  readonly type: "AuthError" | "LimitReached" | "InvalidChannel" | "ServerError";
  readonly error: string;
  readonly status: number;
}

/** A granted subscription (with its member on a presence channel), or a refusal. */
export type Authorization =
  | { readonly ok: true; readonly member: ChannelMember | undefined }
  | { readonly ok: false; readonly refusal: SubscriptionRefusal };

const authError = (error: string, status = 401): Authorization => ({
  ok: false,
  refusal: { type: "AuthError", error, status },
});

/** What {@linkcode authorizeSubscription} checks. */
export interface SubscriptionRequest {
  readonly socketId: string;
  readonly channel: string;
  readonly kind: ChannelKind;
  readonly auth: string | undefined;
  readonly channelData: string | undefined;
  /** The user `pusher:signin` proved on this connection, if any. */
  readonly signedIn: string | undefined;
}

function presenceMember(app: PusherApp, channelData: string): Authorization {
  let value: unknown;
  try {
    value = JSON.parse(channelData);
  } catch {
    return authError("channel_data must be JSON", 400);
  }
  const parsed = ChannelData.safeParse(value);
  if (!parsed.success) {
    return authError("channel_data must have a user_id (a string or a number)", 400);
  }
  const infoJson = JSON.stringify(parsed.data.user_info ?? null);
  const maxBytes = app.maxPresenceMemberSizeKb * 1024;
  if (utf8ByteLength(infoJson) > maxBytes) {
    return {
      ok: false,
      refusal: {
        type: "LimitReached",
        error: `user_info is over the app's ${app.maxPresenceMemberSizeKb} KB`,
        status: 413,
      },
    };
  }
  return {
    ok: true,
    member: { userId: parsed.data.user_id, info: toPresenceInfo(parsed.data.user_info) },
  };
}

/** Checks a subscription's signature, and reads a presence channel's member. */
export async function authorizeSubscription(
  app: PusherApp,
  request: SubscriptionRequest,
): Promise<Authorization> {
  const { socketId, channel, kind, auth, channelData } = request;
  if (kind.user !== undefined) {
    return kind.user === request.signedIn
      ? { ok: true, member: undefined }
      : authError("only a connection signed in as this user may subscribe", 403);
  }
  if (!kind.private) return { ok: true, member: undefined };
  if (auth === undefined || auth === "") return authError("this channel needs an auth signature");
  if (!kind.presence) {
    const valid = await verifyAuth(app, auth, `${socketId}:${channel}`);
    return valid ? { ok: true, member: undefined } : authError("invalid signature");
  }
  if (channelData === undefined) return authError("a presence channel needs channel_data", 400);
  if (!await verifyAuth(app, auth, `${socketId}:${channel}:${channelData}`)) {
    return authError("invalid signature");
  }
  return presenceMember(app, channelData);
}

/** The signed-in user's id, or why the signin is refused. */
export type Signin = { readonly ok: true; readonly userId: string } | {
  readonly ok: false;
  readonly error: string;
};

/** Checks a `pusher:signin`: the signature over `socket_id::user::user_data`, and its `id`. */
export async function authorizeSignin(
  app: PusherApp,
  socketId: string,
  auth: string,
  userData: string,
): Promise<Signin> {
  if (!await verifyAuth(app, auth, `${socketId}::user::${userData}`)) {
    return { ok: false, error: "invalid signin signature" };
  }
  let value: unknown;
  try {
    value = JSON.parse(userData);
  } catch {
    return { ok: false, error: "user_data must be JSON" };
  }
  const parsed = UserData.safeParse(value);
  if (!parsed.success) return { ok: false, error: 'user_data must have an "id"' };
  return { ok: true, userId: parsed.data.id };
}
