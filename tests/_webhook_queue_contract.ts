/**
 * The webhook queue contract (see lib/store/webhooks/types.ts): oldest
 * first, leases that hide a claim and lapse, acks and retries, the bound,
 * sinks apart, and one queue seen by every node exactly when the backend is
 * durable. Run by tests/webhook_queue_contract_test.ts against every backend
 * through the shared harness (tests/_contract.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Clock } from "../lib/clock.ts";
import type { QueuedEntry, WebhookQueue } from "../lib/store/webhooks/types.ts";
import { newEventId } from "../lib/webhooks/events.ts";
import { type ContractCases, type ContractSuite, runContract } from "./_contract.ts";
import { FakeClock } from "./_helpers.ts";

/** What a queue is opened with. */
export interface WebhookQueueOptions {
  clock: Clock;
  maxEntries?: number;
}

/** One case's backend: queues opened by one case share their entries when it is durable. */
export interface WebhookQueueFixture {
  /** Whether queues opened by one case see the same entries. */
  readonly durable: boolean;
  /** Opens another queue on the backend (closed with the fixture). */
  open(options: WebhookQueueOptions): WebhookQueue;
  /** Closes every queue opened, and the backend. */
  close(): Promise<void>;
}

/**
 * Runs the webhook queue contract on one backend.
 *
 * @example
 * ```ts ignore
 * webhookQueueContract({ name: "memory", open: openMemory });
 * ```
 */
export function webhookQueueContract(suite: ContractSuite<WebhookQueueFixture>): void {
  runContract("webhook queue", webhookQueueCases, suite);
}

function entries(clock: Clock, n: number, text = (i: number) => `{"n":${i}}`): QueuedEntry[] {
  return Array.from({ length: n }, (_, i) => ({
    id: newEventId(clock.now()),
    queuedAt: clock.now(),
    attempts: 0,
    event: text(i),
  }));
}

const ids = (list: readonly QueuedEntry[]) => list.map((e) => e.id);

/** The webhook queue contract's cases. */
export const webhookQueueCases: ContractCases<WebhookQueueFixture> = {
  "pushed entries are claimed oldest first, as given": async ({ open }) => {
    const clock = new FakeClock();
    const queue = open({ clock });
    const batch = entries(clock, 3);
    assert.deepEqual(await queue.push("s", batch), []);
    assert.equal(await queue.depth("s"), 3);
    assert.deepEqual(await queue.claim("s", 10, 1000), batch);
    assert.equal(await queue.depth("s"), 3, "claimed entries are still held");
  },

  "a claim takes at most max, and hides what it took for the lease": async ({ open }) => {
    const clock = new FakeClock();
    const queue = open({ clock });
    const batch = entries(clock, 5);
    await queue.push("s", batch);
    assert.deepEqual(ids(await queue.claim("s", 2, 1000)), ids(batch.slice(0, 2)));
    assert.deepEqual(ids(await queue.claim("s", 10, 1000)), ids(batch.slice(2)));
    assert.deepEqual(await queue.claim("s", 10, 1000), [], "all leased");
    clock.advance(999);
    assert.deepEqual(await queue.claim("s", 10, 1000), []);
    clock.advance(1);
    assert.deepEqual(ids(await queue.claim("s", 10, 1000)), ids(batch), "the lease lapsed");
  },

  "ack removes entries; unknown ids are ignored": async ({ open }) => {
    const clock = new FakeClock();
    const queue = open({ clock });
    const batch = entries(clock, 3);
    await queue.push("s", batch);
    await queue.claim("s", 10, 1000);
    await queue.ack("s", [batch[0]!.id, batch[2]!.id, "no-such-id"]);
    await queue.ack("other", [batch[1]!.id]);
    assert.equal(await queue.depth("s"), 1);
    clock.advance(1000);
    assert.deepEqual(await queue.claim("s", 10, 1000), [batch[1]]);
    await queue.ack("s", [batch[1]!.id]);
    assert.equal(await queue.depth("s"), 0);
    assert.deepEqual(await queue.claim("s", 10, 1000), []);
  },

  "retry puts entries back with their attempts, due at dueAt": async ({ open }) => {
    const clock = new FakeClock();
    const queue = open({ clock });
    const batch = entries(clock, 2);
    await queue.push("s", batch);
    const claimed = await queue.claim("s", 10, 60_000);
    const again = claimed.map((e) => ({ ...e, attempts: e.attempts + 1 }));
    await queue.retry("s", again, clock.now() + 2000);
    clock.advance(1999);
    assert.deepEqual(await queue.claim("s", 10, 60_000), []);
    clock.advance(1);
    assert.deepEqual(await queue.claim("s", 10, 60_000), again);
  },

  "an entry acked meanwhile stays gone on retry": async ({ open }) => {
    const clock = new FakeClock();
    const queue = open({ clock });
    const [entry] = entries(clock, 1);
    await queue.push("s", [entry!]);
    await queue.claim("s", 10, 1000);
    await queue.ack("s", [entry!.id]);
    await queue.retry("s", [{ ...entry!, attempts: 1 }], clock.now());
    assert.equal(await queue.depth("s"), 0);
    assert.deepEqual(await queue.claim("s", 10, 1000), []);
  },

  "past maxEntries the oldest are dropped and named": async ({ open }) => {
    const clock = new FakeClock();
    const queue = open({ clock, maxEntries: 3 });
    const batch = entries(clock, 5);
    assert.deepEqual(await queue.push("s", batch.slice(0, 2)), []);
    assert.deepEqual(await queue.push("s", batch.slice(2)), ids(batch.slice(0, 2)));
    assert.equal(await queue.depth("s"), 3);
    assert.deepEqual(ids(await queue.claim("s", 10, 1000)), ids(batch.slice(2)));
    assert.equal(queue.maxEntries, 3);
  },

  "sinks are apart": async ({ open }) => {
    const clock = new FakeClock();
    const queue = open({ clock, maxEntries: 2 });
    const a = entries(clock, 2), b = entries(clock, 2);
    await queue.push("a", a);
    assert.deepEqual(await queue.push("b", b), [], "each sink has its own bound");
    assert.deepEqual(await queue.claim("a", 10, 1000), a);
    assert.deepEqual(await queue.claim("b", 10, 1000), b);
  },

  "hundreds of entries and a large event keep their order and text": async ({ open }) => {
    const clock = new FakeClock();
    const queue = open({ clock });
    const big = "x".repeat(200_000);
    const batch = entries(clock, 250, (i) => i === 7 ? JSON.stringify({ big }) : `{"n":${i}}`);
    await queue.push("s", batch);
    const got: QueuedEntry[] = [];
    for (let round = 0; round < 4; round++) got.push(...await queue.claim("s", 100, 60_000));
    assert.deepEqual(ids(got), ids(batch));
    assert.equal(got[7]!.event, JSON.stringify({ big }));
    await queue.ack("s", ids(got));
    assert.equal(await queue.depth("s"), 0);
  },

  "durable queues are one queue for every node, and a claim is one node's": async (fixture) => {
    const clock = new FakeClock();
    const one = fixture.open({ clock });
    const two = fixture.open({ clock });
    assert.equal(one.durable, fixture.durable);
    const batch = entries(clock, 4);
    await one.push("s", batch);
    if (!fixture.durable) {
      assert.deepEqual(await two.claim("s", 10, 1000), [], "a memory queue is this isolate's");
      return;
    }
    const [a, b] = await Promise.all([one.claim("s", 3, 5000), two.claim("s", 3, 5000)]);
    assert.deepEqual([...ids(a), ...ids(b)].sort(), ids(batch).sort(), "each entry claimed once");
    clock.advance(5000);
    // The claimer died: its entries come due for the other node.
    assert.equal((await two.claim("s", 10, 5000)).length, 4);
    await two.ack("s", ids(batch));
    assert.equal(await one.depth("s"), 0);
  },
};
