/**
 * The ticket store contract (see lib/store/tickets/types.ts): single use
 * (also under concurrent redeems), expiry by the store's clock and the
 * token's `exp`, Origin binding, the byte and count limits, and where a
 * ticket can be redeemed. Run by tests/ticket_store_contract_test.ts against
 * every backend through the shared harness (tests/_contract.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Principal } from "../lib/core/auth.ts";
import type { Clock } from "../lib/clock.ts";
import { ticketCost, type TicketLimits, type TicketStore } from "../lib/store/tickets/types.ts";
import {
  type ContractCases,
  type ContractSuite,
  runContract,
  type StoreFixture,
} from "./_contract.ts";
import { FakeClock } from "./_helpers.ts";

/** What a ticket store is opened with. */
export type TicketStoreOptions = { clock: Clock; ttlMs: number } & TicketLimits;

/**
 * One case's backend: `shared` when a ticket issued on one store can be
 * redeemed on another of the same fixture.
 */
export type TicketFixture = StoreFixture<TicketStore, TicketStoreOptions>;

/**
 * Runs the ticket contract on one backend.
 *
 * @example
 * ```ts ignore
 * ticketStoreContract({ name: "memory", open: openMemory });
 * ```
 */
export function ticketStoreContract(suite: ContractSuite<TicketFixture>): void {
  runContract("ticket", ticketCases, suite);
}

function principal(clock: Clock, overrides: Partial<Principal> = {}): Principal {
  return {
    userId: "alice",
    expiresAt: Math.floor(clock.now() / 1000) + 3600,
    rooms: ["chat:*"],
    roomsReadonly: [],
    roles: [],
    ...overrides,
  };
}

const TTL = 30_000;

/** The ticket contract's cases. */
export const ticketCases: ContractCases<TicketFixture> = {
  "a ticket is redeemed once, for its principal": async ({ open }) => {
    const clock = new FakeClock();
    const store = open({ clock, ttlMs: TTL });
    const alice = principal(clock);
    const issued = await store.issue(alice, "https://app.example");
    assert.ok(issued !== null);
    assert.match(issued.ticket, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(issued.expiresAt, clock.now() + TTL);
    assert.deepEqual(await store.redeem(issued.ticket, "https://app.example"), {
      ok: true,
      principal: alice,
    });
    assert.deepEqual(await store.redeem(issued.ticket, "https://app.example"), {
      ok: false,
      reason: "ticket_invalid",
    });
    assert.deepEqual(await store.redeem("not-a-ticket", null), {
      ok: false,
      reason: "ticket_invalid",
    });
  },
  "expiry: the TTL by the store's clock, never past the token's exp": async ({ open }) => {
    const clock = new FakeClock();
    const store = open({ clock, ttlMs: TTL });
    const issued = (await store.issue(principal(clock), null))!;
    clock.advance(TTL);
    assert.deepEqual(await store.redeem(issued.ticket, null), {
      ok: false,
      reason: "ticket_invalid",
    });
    const soon = principal(clock, { expiresAt: Math.floor(clock.now() / 1000) + 5 });
    const short = (await store.issue(soon, null))!;
    assert.equal(short.expiresAt, soon.expiresAt! * 1000);
    clock.advance(5000);
    assert.equal((await store.redeem(short.ticket, null)).ok, false);
  },
  "another Origin fails and uses the ticket up": async ({ open }) => {
    const clock = new FakeClock();
    const store = open({ clock, ttlMs: TTL });
    const issued = (await store.issue(principal(clock), "https://app.example"))!;
    assert.deepEqual(await store.redeem(issued.ticket, "https://evil.example"), {
      ok: false,
      reason: "ticket_origin_mismatch",
    });
    assert.equal((await store.redeem(issued.ticket, "https://app.example")).ok, false);
    // Unbound tickets take any Origin.
    const free = (await store.issue(principal(clock), null))!;
    assert.equal((await store.redeem(free.ticket, "https://anywhere.example")).ok, true);
  },
  "20 concurrent redeems of one ticket: exactly one succeeds": async ({ open, shared }) => {
    const clock = new FakeClock();
    const stores = shared
      ? Array.from({ length: 4 }, () => open({ clock, ttlMs: TTL }))
      : [open({ clock, ttlMs: TTL })];
    const issued = (await stores[0]!.issue(principal(clock), null))!;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => stores[i % stores.length]!.redeem(issued.ticket, null)),
    );
    assert.equal(results.filter((r) => r.ok).length, 1);
  },
  "a full store answers null: bytes and count are capped, and free again later": async (
    { open, shared },
  ) => {
    const clock = new FakeClock();
    // The attack: every ticket carries the longest Origin /ticket lets through.
    const origin = `https://${"a".repeat(480)}.example`;
    const cost = ticketCost({ principal: principal(clock), origin, expiresAt: clock.now() + TTL });
    const maxBytes = 10 * cost + cost / 2;
    const stores = shared
      ? [open({ clock, ttlMs: TTL, maxBytes }), open({ clock, ttlMs: TTL, maxBytes })]
      : [open({ clock, ttlMs: TTL, maxBytes })];
    const issued = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) => stores[i % stores.length]!.issue(principal(clock), origin),
      ),
    );
    assert.equal(
      issued.filter((t) => t !== null).length,
      10,
      "ten fit, on every instance together",
    );
    // A small ticket still fits in the half left over.
    assert.notEqual(await stores[0]!.issue(principal(clock), null), null);
    // Tickets lapse with their lifetime (two at most for a shared store's windows).
    clock.advance(2 * TTL);
    assert.notEqual(await stores[0]!.issue(principal(clock), origin), null);

    const counted = open({ clock, ttlMs: TTL, maxTickets: 3 });
    clock.advance(2 * TTL);
    const few = [];
    for (let i = 0; i < 5; i++) few.push(await counted.issue(principal(clock), null));
    assert.equal(few.filter((t) => t !== null).length, 3);
  },
  "a ticket is redeemed on another instance exactly when the store is shared": async (
    { open, shared },
  ) => {
    const clock = new FakeClock();
    const a = open({ clock, ttlMs: TTL });
    const b = open({ clock, ttlMs: TTL });
    assert.equal(a.shared, shared);
    const issued = (await a.issue(principal(clock), null))!;
    assert.equal((await b.redeem(issued.ticket, null)).ok, shared);
    assert.equal((await a.redeem(issued.ticket, null)).ok, !shared, "once, wherever it was");
    assert.equal(a.health().status, "ok");
    assert.equal(a.health().transport, a.kind);
  },

  "expired tickets leave nothing held: swept here, or expired by the backend": async (
    { open, shared },
  ) => {
    const clock = new FakeClock();
    const store = open({ clock, ttlMs: TTL });
    // Only a store that holds tickets in this process sweeps; Redis and KV expire keys.
    assert.equal(store.sweep === undefined, shared);
    for (let i = 0; i < 3; i++) assert.notEqual(await store.issue(principal(clock), null), null);
    assert.equal(store.size, shared ? 0 : 3);
    clock.advance(TTL);
    store.sweep?.();
    assert.equal(store.size, 0);
  },
};
