/**
 * The broker contract: one case list every broker passes unchanged (the
 * {@linkcode Broker} interface in lib/broker/types.ts), run by
 * tests/broker_contract_test.ts against each row of the combinations table
 * it covers (memory, BroadcastChannel, Redis, KV). A fixture is two
 * instances ("nodes") on one transport and, for history, one backend; each
 * case drives them through a {@linkcode RoomManager}, as the server does, so
 * what is checked is what members receive.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Broker, BrokerKind } from "../lib/broker/types.ts";
import type { Envelope } from "../lib/bus/types.ts";
import { RoomManager } from "../lib/core/rooms.ts";
import type { StreamPosition } from "../lib/store/history/types.ts";
import type { ContractCases, Fixture } from "./_contract.ts";
import { eventually } from "./_helpers.ts";

/** Two brokers that see each other, and the strategy the table should have chosen. */
export interface BrokerFixture extends Fixture {
  /** The broker the combinations table names for this bus and store. */
  readonly expected: BrokerKind;
  /** Two instances; their buses and stores are closed by `close` (through the brokers). */
  readonly nodes: readonly [Broker, Broker];
}

const limits = { size: 1000, ttlMs: 60_000 };

/** A node as the server runs it: rooms over the broker, every room of `h:*` keeping history. */
function roomsOver(broker: Broker): RoomManager {
  return new RoomManager({
    broker,
    history: {
      limitsFor: (room) => room.startsWith("h:") ? limits : null,
      dedupeWindowMs: 60_000,
      gapWaitMs: 20,
    },
  });
}

/** A member that keeps every frame it is sent. */
function member(): { frames: string[]; send(frame: string): void } {
  const frames: string[] = [];
  return { frames, send: (frame) => frames.push(frame) };
}

interface Delivered {
  n: number;
  offset?: number;
  epoch?: string;
}

function parsed(frames: readonly string[]): Delivered[] {
  return frames.map((frame) => JSON.parse(frame) as Delivered);
}

const frameOf = (n: number) => JSON.stringify({ type: "message", n });

async function publishStored(
  rooms: RoomManager,
  room: string,
  n: number,
  dedupeKey?: string,
): Promise<{ position: StreamPosition; duplicate: boolean }> {
  const outcome = await rooms.publish(
    room,
    frameOf(n),
    dedupeKey === undefined ? {} : { dedupeKey },
  );
  assert.ok(outcome.position !== undefined, "a history publish answers its position");
  return { position: outcome.position, duplicate: outcome.duplicate ?? false };
}

/** The cases; every broker passes all of them. */
export const brokerCases: ContractCases<BrokerFixture> = {
  "the combinations table names this broker": ({ expected, nodes }) => {
    for (const broker of nodes) assert.equal(broker.kind, expected);
    assert.notEqual(nodes[0].instanceId, nodes[1].instanceId);
    return Promise.resolve();
  },

  "history publishes answer contiguous offsets in one epoch": async ({ nodes }) => {
    const rooms = roomsOver(nodes[0]);
    await rooms.join("h:seq", member());
    const answers = [];
    for (let n = 0; n < 25; n++) answers.push(await publishStored(rooms, "h:seq", n));
    assert.deepEqual(
      answers.map((a) => a.position.offset),
      Array.from({ length: 25 }, (_, i) => i + 1),
    );
    assert.equal(new Set(answers.map((a) => a.position.epoch)).size, 1);
    assert.ok(answers.every((a) => !a.duplicate));
  },

  "a second instance delivers each stored message once, in offset order": async ({ nodes }) => {
    const [a, b] = [roomsOver(nodes[0]), roomsOver(nodes[1])];
    const here = member(), there = member();
    await a.join("h:order", here);
    await b.join("h:order", there);
    // Concurrent publishes: the order is the store's, whatever the bus does.
    await Promise.all(Array.from({ length: 40 }, (_, n) => publishStored(a, "h:order", n)));
    await eventually(() => there.frames.length >= 40, 5000, "40 messages on the other instance");
    for (const got of [parsed(here.frames), parsed(there.frames)]) {
      assert.equal(got.length, 40);
      const offsets = got.map((d) => d.offset!);
      assert.deepEqual(offsets, Array.from({ length: 40 }, (_, i) => offsets[0]! + i));
      assert.equal(new Set(got.map((d) => d.n)).size, 40, "each message once");
    }
    assert.deepEqual(parsed(there.frames).map((d) => d.n), parsed(here.frames).map((d) => d.n));
  },

  "a resent publish (same dedupe key) is stored and delivered once": async ({ nodes }) => {
    const [a, b] = [roomsOver(nodes[0]), roomsOver(nodes[1])];
    const here = member(), there = member();
    await a.join("h:dedupe", here);
    await b.join("h:dedupe", there);
    const first = await publishStored(a, "h:dedupe", 1, "alice\nh:dedupe\nid-1");
    const again = await publishStored(a, "h:dedupe", 1, "alice\nh:dedupe\nid-1");
    assert.equal(first.duplicate, false);
    assert.equal(again.duplicate, true);
    assert.deepEqual(again.position, first.position, "the first publish's position, again");
    await publishStored(a, "h:dedupe", 2);
    await eventually(() => parsed(there.frames).some((d) => d.n === 2), 5000, "the marker");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(parsed(there.frames).map((d) => d.n), [1, 2]);
    assert.deepEqual(parsed(here.frames).map((d) => d.n), [1, 2]);
  },

  "rooms without history: once each, in publish order, on both instances": async ({ nodes }) => {
    const [a, b] = [roomsOver(nodes[0]), roomsOver(nodes[1])];
    const here = member(), there = member();
    await a.join("live", here);
    await b.join("live", there);
    for (let n = 0; n < 30; n++) a.publish("live", frameOf(n));
    await eventually(() => there.frames.length >= 30, 5000, "30 live messages");
    await new Promise((resolve) => setTimeout(resolve, 50));
    const expected = Array.from({ length: 30 }, (_, n) => n);
    assert.deepEqual(parsed(there.frames).map((d) => d.n), expected);
    assert.deepEqual(parsed(here.frames).map((d) => d.n), expected, "no echo to the publisher");
    assert.ok(parsed(there.frames).every((d) => d.offset === undefined));
  },

  "system envelopes reach the other instance's handler, never members": async ({ nodes }) => {
    const [a, b] = [roomsOver(nodes[0]), roomsOver(nodes[1])];
    const seen: Envelope[] = [];
    b.onSystem("test", (envelope) => seen.push(envelope));
    const there = member();
    await b.join("sys", there);
    await a.join("sys", member());
    nodes[0].publish("sys", '{"hello":1}', { kind: "test" });
    await eventually(() => seen.length === 1, 5000, "the system envelope");
    assert.equal(seen[0]!.origin, nodes[0].instanceId);
    assert.equal(seen[0]!.frame, '{"hello":1}');
    assert.deepEqual(there.frames, []);
  },
};
