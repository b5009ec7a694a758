/**
 * Picks the bus transport named by `BUS` and wires its fault reports to the
 * log. The only place that knows every transport.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Config } from "../config.ts";
import { leaseKv } from "../store/_kv.ts";
import { BroadcastChannelBus } from "./broadcast_channel.ts";
import { KvBus } from "./kv.ts";
import { MemoryBus } from "./memory.ts";
import { createRedisBus } from "./redis.ts";
import type { Bus } from "./types.ts";
import { errorMessage } from "../errors.ts";

/** The parts of the {@linkcode Config} the bus reads. */
export interface BusSettings {
  bus: Config["bus"];
  /** The Redis server or KV database the bus shares with the stores. */
  store: Pick<Config["store"], "redis" | "kv">;
  limits: Pick<Config["limits"], "maxMessageBytes">;
  internal: Pick<Config["internal"], "busTestDropRate">;
}

/** Room name, sender and timestamp around a payload: what a frame adds to a client message. */
const FRAME_OVERHEAD_BYTES = 4096;

/**
 * Builds the configured bus. Envelope limits are raised to fit any message
 * that `MAX_MESSAGE_BYTES` lets through, so that the bus never refuses what
 * the socket accepted.
 */
export function createBus(config: BusSettings): Promise<Bus> {
  const log = getLogger(["realtime", "bus"]);
  const onGap = (origin: string, missing: number, room?: string) =>
    log.warn("bus gap: {missing} envelope(s) from {origin} lost", { origin, missing, room });
  const onError = (err: unknown) =>
    log.error("bus error: {message}", {
      message: errorMessage(err),
    });
  const fit = (floor: number) =>
    Math.max(floor, config.limits.maxMessageBytes + FRAME_OVERHEAD_BYTES);
  switch (config.bus.kind) {
    case "memory":
      return Promise.resolve(new MemoryBus());
    case "broadcast":
      return Promise.resolve(
        new BroadcastChannelBus({
          channel: config.bus.channel,
          maxEnvelopeBytes: fit(64 * 1024),
          onGap,
          onError,
          testDropRate: config.internal.busTestDropRate,
        }),
      );
    case "kv":
      return leaseKv(config.store.kv.path).then((lease) =>
        new KvBus({
          kv: lease.kv,
          prefix: [config.store.kv.prefix],
          maxEnvelopeBytes: fit(1024 * 1024),
          onGap,
          onError,
          onClose: () => lease.release(),
        })
      );
    case "redis":
      return createRedisBus({
        url: config.store.redis!.url,
        prefix: config.store.redis!.prefix,
        maxEnvelopeBytes: fit(1024 * 1024),
        onGap,
        onError,
        onRecover: () => log.info("bus recovered: Redis is reachable again"),
      });
  }
}
