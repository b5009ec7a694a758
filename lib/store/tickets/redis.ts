/**
 * Tickets on Redis (`STORE=redis`): a ticket issued on one node is redeemed
 * on whichever node the WebSocket reaches, exactly once. Stored under
 * `<prefix>:ticket:<sha256(ticket)>` (Redis never holds a usable ticket)
 * with the ticket's lifetime as expiry; redeeming is one `GETDEL`, so of two
 * concurrent redeems only one finds it. Issuing is one script that also
 * charges the ticket to a usage hash per ticket lifetime
 * (`<prefix>:ticket_usage:<window>`) and refuses past the limits.
 *
 * @module
 */
import type { Principal } from "../../core/auth.ts";
import type { Clock } from "../../clock.ts";
import { systemClock } from "../../clock.ts";
import { RedisStoreLink } from "../_redis.ts";
import { judge, ticketHash } from "./_judge.ts";
import {
  DEFAULT_MAX_TICKETS,
  DEFAULT_TICKET_STORE_MAX_BYTES,
  isStoredTicket,
  type IssuedTicket,
  newTicket,
  type Redemption,
  type StoredTicket,
  ticketCost,
  ticketExpiry,
  type TicketLimits,
  type TicketStore,
  usageWindows,
} from "./types.ts";
import type { StoreHealth } from "../types.ts";

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
export interface RedisTicketStoreOptions extends TicketLimits {
  /** `redis://` or `rediss://` URL, credentials included. */
  url: string;
  /** How long a ticket stays valid, in ms. */
  ttlMs: number;
  /**
   * Prefix of the keys, so several apps can share one Redis (`BUS_CHANNEL`).
   *
   * @default {"realtime"}
   */
  prefix?: string;
  /** @default systemClock */
  clock?: Clock;
  /** Called once when Redis becomes unreachable, not again until it is back. */
  onError?: (error: Error) => void;
}

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
export class RedisTicketStore implements TicketStore {
  readonly kind = "redis";
  readonly shared = true;
  readonly size = 0;
  readonly #link: RedisStoreLink;
  readonly #ttlMs: number;
  readonly #prefix: string;
  readonly #clock: Clock;
  readonly #maxBytes: number;
  readonly #maxTickets: number;

  /** @param options Redis URL, ticket lifetime, bounds, key prefix and clock; connecting starts at once */
  constructor(options: RedisTicketStoreOptions) {
    const {
      url,
      ttlMs,
      prefix = "realtime",
      clock = systemClock,
      onError,
      maxBytes = DEFAULT_TICKET_STORE_MAX_BYTES,
      maxTickets = DEFAULT_MAX_TICKETS,
    } = options;
    this.#link = new RedisStoreLink({
      url,
      name: "Redis ticket store",
      store: "ticket store",
      // A store just created, or reconnecting, gets one command timeout to
      // come up: a ticket is asked for right before the socket that redeems it.
      waitForLink: true,
      whileDown: "tickets cannot be issued or redeemed until it is back",
      ...(onError === undefined ? {} : { onError }),
    });
    this.#ttlMs = ttlMs;
    this.#prefix = prefix;
    this.#clock = clock;
    this.#maxBytes = maxBytes;
    this.#maxTickets = maxTickets;
  }

  /** Resolves true once connected, or false after `timeoutMs`; it keeps trying either way. */
  ready(timeoutMs: number): Promise<boolean> {
    return this.#link.ready(timeoutMs);
  }

  async issue(principal: Principal, origin: string | null): Promise<IssuedTicket | null> {
    const ticket = newTicket();
    const now = this.#clock.now();
    const expiresAt = ticketExpiry(principal, now, this.#ttlMs);
    const value: StoredTicket = { principal: { ...principal }, origin, expiresAt };
    const ttl = String(Math.max(1, Math.ceil(expiresAt - now)));
    const { current, previous } = usageWindows(now, this.#ttlMs);
    const usage = (window: number) => `${this.#prefix}:ticket_usage:${window}`;
    const stored = await this.#link.command([
      "EVAL",
      ISSUE_LUA,
      "3",
      await this.#key(ticket),
      usage(current),
      usage(previous),
      JSON.stringify(value),
      ttl,
      String(ticketCost(value)),
      String(this.#maxBytes),
      String(this.#maxTickets),
      // Counted until the window after it ends.
      String(2 * this.#ttlMs),
    ]);
    return stored === 1 ? { ticket, expiresAt } : null;
  }

  async redeem(ticket: string, origin: string | null): Promise<Redemption> {
    const reply = await this.#link.command(["GETDEL", await this.#key(ticket)]);
    const stored = typeof reply === "string" ? parseStored(reply) : undefined;
    if (stored === undefined) return { ok: false, reason: "ticket_invalid" };
    // Expiry is judged by our clock too: Redis drops the key at about the same time.
    return judge(stored, origin, this.#clock.now());
  }

  health(): StoreHealth {
    return this.#link.health();
  }

  close(): Promise<void> {
    return this.#link.close();
  }

  async #key(ticket: string): Promise<string> {
    return `${this.#prefix}:ticket:${await ticketHash(ticket)}`;
  }
}

function parseStored(text: string): StoredTicket | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return isStoredTicket(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Creates a {@linkcode RedisTicketStore} and waits up to `startTimeoutMs` for
 * its first connection; never rejects for an unreachable Redis.
 */
export async function createRedisTicketStore(
  options: RedisTicketStoreOptions & { startTimeoutMs?: number },
): Promise<RedisTicketStore> {
  const { startTimeoutMs = 2000, ...rest } = options;
  const store = new RedisTicketStore(rest);
  await store.ready(startTimeoutMs);
  return store;
}
