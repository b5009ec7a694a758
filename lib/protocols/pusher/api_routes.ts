/**
 * The Pusher HTTP API (`/apps/{id}/…`): `events`, `batch_events`,
 * `channels`, `channels/{name}`, `channels/{name}/users` and
 * `users/{id}/terminate_connections`, each signed as Pusher signs it
 * (lib/protocols/pusher/api_auth.ts) and checked as Pusher checks it
 * (lib/protocols/pusher/api_requests.ts), answered from the Pusher channels
 * ({@linkcode PusherChannels}). The router answers unknown paths (404),
 * other methods (405) and writes while draining (503).
 *
 * @module
 */
import type { z } from "zod";
import type { AuditSink } from "../../audit.ts";
import type { Clock } from "../../clock.ts";
import type { LimitsConfig } from "../../config.ts";
import { jsonDeeperThan, parseJsonRefusingProto, ProtoKeyError } from "../../core/json.ts";
import { MessageTooLargeError } from "../../core/rooms.ts";
import {
  apiError,
  bodyErrorResponse,
  json,
  parseJsonBody,
  readBodyLimited,
} from "../../http/common.ts";
import type { Route, RouteContext } from "../../http/router.ts";
import { Counters } from "../../metrics.ts";
import { retryAfter, StoreUnavailableError } from "../../store/types.ts";
import { checkCredentials, checkSignature } from "./api_auth.ts";
import {
  type ApiRefusal,
  BatchEventsBody,
  bodyLimit,
  checkBatch,
  type CheckedEvent,
  checkEvent,
  EventsBody,
  type InfoAttribute,
  isPresenceChannel,
  MAX_USER_ID_LENGTH,
  parseInfo,
  TerminateBody,
} from "./api_requests.ts";
import type { PusherApp, PusherApps } from "./apps.ts";
import { MAX_CHANNEL_LENGTH, validChannelName } from "./channel_names.ts";
import type { ChannelState, PusherChannels } from "./types.ts";

/** The API's endpoints, as the `endpoint` label of its metric names them. */
export type PusherApiEndpoint =
  | "events"
  | "batch_events"
  | "channels"
  | "channel"
  | "users"
  | "terminate";

/** What the API needs. */
export interface PusherApiDeps {
  apps: PusherApps;
  channels: PusherChannels;
  /** `auth_timestamp` is checked against it. */
  clock: Clock;
  audit: AuditSink;
  counters: Counters;
  /** The nesting limit of `data` and the body's arrival deadline. */
  limits: Pick<LimitsConfig, "maxPayloadDepth" | "bodyTimeoutMs">;
  /** Aborted when the server shuts down: a body still arriving is abandoned. */
  shutdownSignal: AbortSignal;
}

/** A signed request, checked: its app, query, body and path parameters. */
interface SignedCall {
  readonly app: PusherApp;
  readonly query: URLSearchParams;
  readonly body: string;
  readonly params: Readonly<Record<string, string>>;
  readonly ip: string;
}

type Endpoint = (call: SignedCall) => Promise<Response>;

// Pusher's bodies are at most three levels deep (`{"batch":[{…}]}`).
const MAX_BODY_DEPTH = 3;

function refused(refusal: ApiRefusal): Response {
  return refusal.status === 413
    ? apiError(413, "payload_too_large", refusal.message)
    : apiError(400, "bad_request", refusal.message);
}

function badRequest(message: string): Response {
  return apiError(400, "bad_request", message);
}

/** Parses a JSON body with `schema`: the value, or the 400 to answer. */
function parseBody<S extends z.ZodType>(text: string, schema: S): z.output<S> | Response {
  return parseJsonBody(text, schema, {
    precheck: (body) =>
      jsonDeeperThan(body, MAX_BODY_DEPTH)
        ? `body nests deeper than ${MAX_BODY_DEPTH} levels (data must be a string)`
        : undefined,
    parse: parseJsonRefusingProto,
    notJson: (err) => err instanceof ProtoKeyError ? err.message : "body is not valid JSON",
  });
}

/**
 * Runs an endpoint behind the signature checks: the app by id (404 when
 * unknown), key, version and timestamp, then the body (bounded in bytes and
 * time), its MD5 and the signature. Counts every answer by endpoint and status.
 */
function signed(deps: PusherApiDeps, name: PusherApiEndpoint, endpoint: Endpoint) {
  const { apps, clock, audit, counters, limits, shutdownSignal } = deps;
  const answer = async (req: Request, ctx: RouteContext): Promise<Response> => {
    const app = apps.byId(ctx.params.appId ?? "");
    if (app === undefined) return apiError(404, "not_found", "Unknown app");
    const query = ctx.url.searchParams;
    const unsigned = checkCredentials(app, query, clock.now());
    let body = "";
    let refusal = unsigned;
    if (refusal === undefined) {
      if (req.method !== "GET") {
        try {
          body = await readBodyLimited(req, bodyLimit(app), {
            timeoutMs: limits.bodyTimeoutMs,
            signal: shutdownSignal,
          });
        } catch (err) {
          return bodyErrorResponse(err);
        }
      }
      refusal = await checkSignature(
        app,
        { method: req.method, path: ctx.url.pathname, query },
        body,
      );
    }
    if (refusal !== undefined) {
      audit.record("auth_failure", {
        protocol: "pusher",
        app: app.id,
        endpoint: name,
        reason: refusal.reason,
        ip: ctx.ip,
      });
      return apiError(401, "unauthorized", refusal.message);
    }
    if (!app.enabled) return apiError(403, "forbidden", "the app is disabled");
    return await endpoint({ app, query, body, params: ctx.params, ip: ctx.ip });
  };
  return async (req: Request, ctx: RouteContext): Promise<Response> => {
    let status = 500;
    try {
      const res = await answer(req, ctx);
      status = res.status;
      return res;
    } finally {
      Counters.bump(counters.pusherApi, `${name} ${status}`);
    }
  };
}

/** The attributes of one channel an `info` parameter asked for. */
function attributes(
  channel: string,
  state: ChannelState,
  info: ReadonlySet<InfoAttribute>,
): Record<string, number> {
  const out: Record<string, number> = {};
  if (info.has("subscription_count")) out.subscription_count = state.subscriptionCount;
  if (info.has("user_count") && isPresenceChannel(channel)) out.user_count = state.userCount ?? 0;
  return out;
}

/** Triggers checked events in order: `undefined`, or the answer when the core refused. */
async function triggerAll(
  channels: PusherChannels,
  app: PusherApp,
  events: readonly CheckedEvent[],
): Promise<Response | undefined> {
  try {
    for (const { event } of events) await channels.trigger(app, event);
  } catch (err) {
    if (err instanceof MessageTooLargeError) {
      return apiError(413, "payload_too_large", "the event is too large for the bus");
    }
    if (err instanceof StoreUnavailableError) {
      return apiError(503, "unavailable", "the store is unavailable; retry later", retryAfter(err));
    }
    throw err;
  }
  return undefined;
}

/** `POST /apps/{id}/events`. */
function events(deps: PusherApiDeps): Endpoint {
  return async ({ app, body, ip }) => {
    const parsed = parseBody(body, EventsBody);
    if (parsed instanceof Response) return parsed;
    const checked = checkEvent(app, parsed, deps.limits);
    if ("status" in checked) return refused(checked);
    const failed = await triggerAll(deps.channels, app, [checked]);
    if (failed !== undefined) return failed;
    const { event, info } = checked;
    deps.audit.record("publish_api", {
      protocol: "pusher",
      app: app.id,
      channels: event.channels.length,
      ip,
    });
    if (info.size === 0) return json(200, {});
    const answer: Record<string, Record<string, number>> = {};
    for (const channel of event.channels) {
      answer[channel] = attributes(channel, await deps.channels.channel(app, channel), info);
    }
    return json(200, { channels: answer });
  };
}

/** `POST /apps/{id}/batch_events`: every event checked before any is sent. */
function batchEvents(deps: PusherApiDeps): Endpoint {
  return async ({ app, body, ip }) => {
    const parsed = parseBody(body, BatchEventsBody);
    if (parsed instanceof Response) return parsed;
    const checked = checkBatch(app, parsed.batch, deps.limits);
    if ("status" in checked) return refused(checked);
    const failed = await triggerAll(deps.channels, app, checked);
    if (failed !== undefined) return failed;
    deps.audit.record("publish_api", {
      protocol: "pusher",
      app: app.id,
      events: checked.length,
      ip,
    });
    if (checked.every(({ info }) => info.size === 0)) return json(200, {});
    const batch: Record<string, number>[] = [];
    for (const { event, info } of checked) {
      const channel = event.channels[0]!;
      batch.push(
        info.size === 0 ? {} : attributes(channel, await deps.channels.channel(app, channel), info),
      );
    }
    return json(200, { batch });
  };
}

/** `GET /apps/{id}/channels`: occupied channels, by prefix. */
function channelList(deps: PusherApiDeps): Endpoint {
  return async ({ app, query }) => {
    const prefix = query.get("filter_by_prefix") ?? undefined;
    if (prefix !== undefined && prefix.length > MAX_CHANNEL_LENGTH) {
      return badRequest(`filter_by_prefix: over ${MAX_CHANNEL_LENGTH} characters`);
    }
    const info = parseInfo(query.get("info"));
    if (info.has("user_count") && !prefix?.startsWith("presence-")) {
      return badRequest(
        "info=user_count is only for presence channels: filter_by_prefix=presence-",
      );
    }
    const found = await deps.channels.channels(app, prefix);
    const answer: Record<string, Record<string, number>> = {};
    for (const [channel, state] of found) answer[channel] = attributes(channel, state, info);
    return json(200, { channels: answer });
  };
}

/** `GET /apps/{id}/channels/{name}`: one channel's state. */
function channelState(deps: PusherApiDeps): Endpoint {
  return async ({ app, query, params }) => {
    const channel = params.channelName ?? "";
    if (!validChannelName(channel)) return badRequest("Invalid channel name");
    const info = parseInfo(query.get("info"));
    if (info.has("user_count") && !isPresenceChannel(channel)) {
      return badRequest("info=user_count is only for presence channels");
    }
    const state = await deps.channels.channel(app, channel);
    return json(200, { occupied: state.occupied, ...attributes(channel, state, info) });
  };
}

/** `GET /apps/{id}/channels/{name}/users`: a presence channel's users. */
function channelUsers(deps: PusherApiDeps): Endpoint {
  return async ({ app, params }) => {
    const channel = params.channelName ?? "";
    if (!validChannelName(channel)) return badRequest("Invalid channel name");
    if (!isPresenceChannel(channel)) return badRequest("users are only for presence channels");
    const ids = await deps.channels.users(app, channel);
    return json(200, { users: ids.map((id) => ({ id })) });
  };
}

/** `POST /apps/{id}/users/{user_id}/terminate_connections`. */
function terminate(deps: PusherApiDeps): Endpoint {
  return async ({ app, body, params, ip }) => {
    const user = params.userId ?? "";
    if (user.length > MAX_USER_ID_LENGTH) {
      return badRequest(`user id: over ${MAX_USER_ID_LENGTH} characters`);
    }
    if (body !== "") {
      const parsed = parseBody(body, TerminateBody);
      if (parsed instanceof Response) return parsed;
    }
    await deps.channels.terminateUser(app, user);
    deps.audit.record("revoke", { protocol: "pusher", app: app.id, user, ip });
    return json(200, {});
  };
}

/**
 * The API's routes, for the route table. Writes drain (503 while the
 * server shuts down); reads keep answering.
 *
 * @example
 * ```ts ignore
 * const routes = [...otherRoutes, ...pusherApiRoutes({ apps, channels, clock, audit, counters, limits, shutdownSignal })];
 * ```
 */
export function pusherApiRoutes(deps: PusherApiDeps): Route[] {
  const route = (
    path: string,
    method: "GET" | "POST",
    name: PusherApiEndpoint,
    endpoint: Endpoint,
  ): Route => ({
    path: `/apps/{appId}${path}`,
    methods: [method],
    drains: method === "POST",
    handler: signed(deps, name, endpoint),
  });
  return [
    route("/events", "POST", "events", events(deps)),
    route("/batch_events", "POST", "batch_events", batchEvents(deps)),
    route("/channels", "GET", "channels", channelList(deps)),
    route("/channels/{channelName}", "GET", "channel", channelState(deps)),
    route("/channels/{channelName}/users", "GET", "users", channelUsers(deps)),
    route("/users/{userId}/terminate_connections", "POST", "terminate", terminate(deps)),
  ];
}
