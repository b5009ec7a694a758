/**
 * Tickets on Redis (`STORE=redis`): a ticket issued on one node is redeemed
 * on whichever node the WebSocket reaches, exactly once. Stored under
 * `<prefix>:ticket:<sha256(ticket)>` (Redis never holds a usable ticket)
 * with the ticket's lifetime as expiry; redeeming is one `GETDEL`, so of two
 * concurrent redeems only one finds it. Issuing is one script that also
 * charges the ticket to a usage hash per ticket lifetime
 * (`<prefix>:ticket_usage:<window>`) and refuses past the limits. On a Redis
 * Cluster `<prefix>:ticket` is written `{<prefix>:ticket}` in both, so the
 * script stays in one slot (tickets are one per connection: one shard carries them).
 *
 * @module
 */
import type { Principal } from "../../core/auth.ts";
import { RedisStoreLink, type RedisStoreOptions, startRedisStore } from "../_redis.ts";
import type { StoreHealth } from "../types.ts";
import { SharedTicketStore, ticketHash, type TicketRulesOptions } from "./_rules.ts";
import {
  type IssuedTicket,
  parseStoredTicket,
  type Redemption,
  type TicketStore,
} from "./types.ts";

/**
 * KEYS: ticket, usage of this window, usage of the previous one. ARGV: value,
 * its ttl in ms, its cost, max bytes, max tickets, the usage hash's ttl in ms.
 * Answers 1 when stored, 0 when full.
 */
const ISSUE_LUA = `
local bytes = tonumber(redis.call('HGET', KEYS[2], 'b') or 0)
  + tonumber(redis.call('HGET', KEYS[3], 'b') or 0)
local count = tonumber(redis.call('HGET', KEYS[2], 'n') or 0)
  + tonumber(redis.call('HGET', KEYS[3], 'n') or 0)
if bytes + tonumber(ARGV[3]) > tonumber(ARGV[4]) or count + 1 > tonumber(ARGV[5]) then
  return 0
end
redis.call('HINCRBY', KEYS[2], 'b', ARGV[3])
redis.call('HINCRBY', KEYS[2], 'n', 1)
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/** Options for {@linkcode RedisTicketStore}. */
export interface RedisTicketStoreOptions extends TicketRulesOptions, RedisStoreOptions {}

/**
 * The shared {@linkcode TicketStore} on Redis. It has no `sweep`: Redis
 * expires each ticket's key with the ticket.
 *
 * @example
 * ```ts ignore
 * const tickets = new RedisTicketStore({ url: "redis://127.0.0.1:6379", ttlMs: 30_000 });
 * const issued = await tickets.issue(principal, "https://app.example");
 * ```
 */
export class RedisTicketStore extends SharedTicketStore implements TicketStore {
  readonly kind = "redis";
  readonly #link: RedisStoreLink;
  /** `<prefix>:ticket`, a hash tag on a Cluster: tickets and usage share one slot. */
  readonly #tagged: string;

  /** @param options Redis URL, ticket lifetime, bounds, key prefix and clock; connecting starts at once */
  constructor(options: RedisTicketStoreOptions) {
    super(options);
    const { prefix = "realtime" } = options;
    this.#link = new RedisStoreLink({
      ...options,
      name: "Redis ticket store",
      store: "ticket store",
      // A store just created, or reconnecting, gets one command timeout to
      // come up: a ticket is asked for right before the socket that redeems it.
      waitForLink: true,
      whileDown: "tickets cannot be issued or redeemed until it is back",
    });
    this.#tagged = this.#link.tag(`${prefix}:ticket`);
  }

  /** Resolves true once connected, or false after `timeoutMs`; it keeps trying either way. */
  ready(timeoutMs: number): Promise<boolean> {
    return this.#link.ready(timeoutMs);
  }

  async issue(principal: Principal, origin: string | null): Promise<IssuedTicket | null> {
    const { issued, stored, cost, now, lifetimeMs } = this.rules.draft(principal, origin);
    const { current, previous } = this.rules.windows(now);
    const usage = (window: number) => `${this.#tagged}_usage:${window}`;
    const key = await this.#key(issued.ticket);
    const reply = await this.#link.command([
      "EVAL",
      ISSUE_LUA,
      "3",
      key,
      usage(current),
      usage(previous),
      JSON.stringify(stored),
      String(lifetimeMs),
      String(cost),
      String(this.rules.maxBytes),
      String(this.rules.maxTickets),
      String(this.rules.usageTtlMs),
    ], key);
    return reply === 1 ? issued : null;
  }

  async redeem(ticket: string, origin: string | null): Promise<Redemption> {
    const reply = await this.#link.command(["GETDEL", await this.#key(ticket)]);
    const stored = typeof reply === "string" ? parseStoredTicket(reply) : undefined;
    if (stored === undefined) return { ok: false, reason: "ticket_invalid" };
    // Expiry is judged by our clock too: Redis drops the key at about the same time.
    return this.rules.judge(stored, origin);
  }

  health(): StoreHealth {
    return this.#link.health();
  }

  close(): Promise<void> {
    return this.#link.close();
  }

  async #key(ticket: string): Promise<string> {
    return `${this.#tagged}:${await ticketHash(ticket)}`;
  }
}

/**
 * Creates a {@linkcode RedisTicketStore} and waits up to `startTimeoutMs` for
 * its first connection; never rejects for an unreachable Redis.
 */
export function createRedisTicketStore(
  options: RedisTicketStoreOptions & { startTimeoutMs?: number },
): Promise<RedisTicketStore> {
  const { startTimeoutMs, ...rest } = options;
  return startRedisStore(new RedisTicketStore(rest), startTimeoutMs);
}
