/**
 * What the two front doors are built with: the context every session gets
 * (services, limits, the end-of-session hook), and the Pusher front door
 * (`/app/{key}`) when the server has Pusher apps. The native `/ws` gate is
 * built beside it in lib/server.ts.
 *
 * @module
 */
import type { SessionContext } from "../protocols/native/mod.ts";
import { PusherFrontDoor } from "../protocols/pusher/mod.ts";
import type { ServerOptions, Services } from "./compose.ts";

/** What every session is built with. */
export function sessionContext(
  services: Services,
  config: ServerOptions["config"],
): SessionContext {
  const { rooms, historyReader, presence, limiter, verifier, policy, clock, audit } = services;
  const { connections, metrics, batcher, broker, hooks } = services;
  return {
    joins: hooks.joins,
    backend: hooks.backend,
    rooms,
    history: historyReader,
    ...(presence === undefined ? {} : { presence }),
    limiter,
    verifier,
    policy,
    clock,
    audit,
    counters: metrics.counters,
    batcher,
    instanceId: broker.instanceId,
    limits: {
      maxMessageBytes: config.limits.maxMessageBytes,
      maxPayloadDepth: config.limits.maxPayloadDepth,
      maxRoomsPerConnection: config.limits.maxRoomsPerConnection,
      maxBufferedBytes: config.limits.maxBufferedBytes,
      replayStallMs: config.server.heartbeatMs,
      maxViolations: config.limits.rate.maxViolations,
      expiryWarningMs: config.auth.expiryWarningMs,
    },
    onEnd(session, code, reason) {
      connections.remove(session);
      services.caps?.ended(session);
      services.webhooks?.native.closed(session, code, reason);
    },
  };
}

/** The Pusher front door (`/app/{key}`), when the server has Pusher apps. */
export function pusherFrontDoor(
  services: Services,
  options: ServerOptions,
  draining: () => boolean,
): PusherFrontDoor | undefined {
  const { config } = options;
  const { pusher, pusherObserver: observer } = services;
  if (pusher === undefined) return undefined;
  const door = new PusherFrontDoor({
    ...services,
    apps: pusher.apps,
    stats: pusher.stats,
    allowedOrigins: config.auth.allowedOrigins,
    limits: config.limits,
    heartbeatMs: config.server.heartbeatMs,
    session: {
      ...sessionContext(services, config),
      revocations: services.revocations,
      ...(observer === undefined ? {} : { observer }),
    },
    draining,
  });
  services.metrics.watchPusher(() => door.figures());
  return door;
}
