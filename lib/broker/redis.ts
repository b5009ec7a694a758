/**
 * The broker for `BUS=redis` with the Redis history store: one script stores
 * the message and publishes it, with its position, on the bus's channel for
 * the room, so one order reaches every instance and nothing is stored that
 * was not sent (centrifuge's "saving to a history stream and publishing to
 * PUB/SUB should be an atomic operation"). This instance receives its own
 * stored messages back too; the room's stream ignores offsets it delivered.
 *
 * On a Redis Cluster a room's message is stored and published on its own
 * shard, so a room is refused (`unavailable`) only while the bus cannot
 * reach that shard: the other shards' rooms go on during one shard's
 * failover.
 *
 * @module
 */
import type { BusHealth } from "../bus/types.ts";
import { RedisBus } from "../bus/redis.ts";
import type { AppendOptions, AppendResult } from "../store/history/types.ts";
import type { RedisHistoryStore } from "../store/history/redis.ts";
import { SharedBroker } from "./_base.ts";

/**
 * A {@linkcode Broker} whose history publishes are one Redis script each.
 *
 * @example
 * ```ts ignore
 * const broker = new RedisBroker({ bus: redisBus, history: redisHistoryStore });
 * ```
 */
export class RedisBroker extends SharedBroker<RedisHistoryStore> {
  readonly kind = "redis";

  protected override append(
    store: RedisHistoryStore,
    room: string,
    frame: string,
    options: AppendOptions,
  ): Promise<AppendResult> {
    return store.append(room, frame, { ...options, publishAs: this.instanceId });
  }

  protected override busHealth(room: string): BusHealth {
    return this.bus instanceof RedisBus ? this.bus.healthOf(room) : this.bus.health();
  }

  protected fanOut(): void {
    // The script published it.
  }
}
