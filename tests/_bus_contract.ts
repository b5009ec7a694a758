/**
 * The bus contract: one suite every transport must pass unchanged (the
 * {@linkcode Bus} interface in lib/bus/types.ts). A transport's test file
 * calls {@linkcode busContract} with a factory for instances that see each
 * other; the cases never know which transport they run on, except through
 * the capability flags of {@linkcode BusSuite}.
 *
 * Adding a transport: in tests/bus_contract_test.ts, call
 * `busContract({ name: "x", transport: "x", echoesPositioned: false, open })`.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Bus, Envelope } from "../lib/bus/types.ts";
import { eventually } from "./_helpers.ts";

/** Largest envelope every bus of a case is opened with, in bytes. */
export const CONTRACT_MAX_ENVELOPE_BYTES = 16 * 1024;

/** The buses of one case ("nodes" that see each other) and how to release them. */
export interface ContractNodes {
  /** As many buses as asked for, each a separate instance on one shared transport. */
  readonly buses: Bus[];
  /** Releases whatever the factory opened besides the buses (the harness closes those). */
  close(): Promise<void>;
}

/** How to run the contract on one transport. */
export interface BusSuite {
  /** Shown in test names. */
  name: string;
  /** What {@linkcode Bus.health} reports as `transport`. */
  transport: string;
  /**
   * Whether an instance's own envelopes that carry a `position` come back to
   * its handler (the interface allows it: receivers deduplicate by offset).
   * Redis does, because a history script publishes on the instance's behalf
   * on the same channel; the others never deliver their own envelopes.
   */
  echoesPositioned: boolean;
  /** Skip (with the reason shown) when the transport cannot run here. */
  ignore?: boolean;
  /** Once before the cases (e.g. start a Redis server). */
  before?(): Promise<void>;
  /** Once after the cases, even when one failed. */
  after?(): Promise<void>;
  /**
   * `count` fresh buses on one transport, isolated from every other case
   * (their own channel, prefix or database), each with
   * {@linkcode CONTRACT_MAX_ENVELOPE_BYTES}.
   */
  open(count: number): Promise<ContractNodes>;
}

/** A bus and what its handler received. */
interface Node {
  bus: Bus;
  got: Envelope[];
}

/** Three nodes per case; most cases use the first two. */
type Case = (nodes: [Node, Node, Node], suite: BusSuite) => Promise<void>;

function frames(node: Node, room: string): string[] {
  return node.got.filter((e) => e.room === room).map((e) => e.frame);
}

/**
 * `from` publishes a marker in `room` and `to` waits for it: by per-publisher
 * order, whatever `from` published in `room` before it has arrived (or never will).
 */
async function barrier(from: Node, to: Node, room: string): Promise<void> {
  const marker = `barrier-${crypto.randomUUID()}`;
  from.bus.publish(room, marker);
  await eventually(() => frames(to, room).includes(marker), 5000, `${marker} in ${room}`);
}

/** Frames that need care on every wire: a header look-alike, newlines, quotes, astral characters. */
const TRICKY_FRAMES = [
  "{}",
  "",
  '{"origin":"forged","seq":1,"room":"r"}\n{"type":"message"}',
  '{"type":"message","room":"r","payload":{"s":"é🙂\\n\\"x\\"","n":-0.5}}',
  "line one\nline two\r\n\ttab \\ backslash \u0000 nul \u2028",
  "日本語".repeat(1000),
];

const cases: Record<string, Case> = {
  "a publish reaches every subscribed instance once, never its own handler": async (nodes) => {
    const [a, b, c] = nodes;
    assert.equal(new Set(nodes.map((n) => n.bus.instanceId)).size, 3, "distinct instance ids");
    for (const n of nodes) await n.bus.subscribe("r");
    a.bus.publish("r", "hello");
    await eventually(() => frames(b, "r").includes("hello"), 5000, "hello at b");
    await eventually(() => frames(c, "r").includes("hello"), 5000, "hello at c");
    // b's reply follows a's publish everywhere: once it is in, an echo would be too.
    await barrier(b, a, "r");
    await barrier(b, c, "r");
    assert.deepEqual(frames(a, "r").filter((f) => !f.startsWith("barrier-")), []);
    assert.equal(frames(b, "r").filter((f) => f === "hello").length, 1);
    assert.equal(frames(c, "r").filter((f) => f === "hello").length, 1);
    assert.ok(b.got.every((e) => e.origin !== b.bus.instanceId), "b never hears itself");
  },

  "own envelopes with a position come back at most once, as the transport declares": async (
    [a, b],
    suite,
  ) => {
    await a.bus.subscribe("h");
    await b.bus.subscribe("h");
    a.bus.publish("h", "stored", { position: { offset: 7, epoch: "e1" } });
    await eventually(() => frames(b, "h").includes("stored"), 5000, "stored at b");
    await barrier(b, a, "h");
    const echoes = a.got.filter((e) => e.frame === "stored");
    assert.equal(echoes.length, suite.echoesPositioned ? 1 : 0);
    for (const e of echoes) {
      assert.equal(e.origin, a.bus.instanceId);
      assert.deepEqual(e.position, { offset: 7, epoch: "e1" });
    }
  },

  "subscribe resolves once later publishes from any instance arrive": async ([a, b, c]) => {
    // No wait between the two steps: the resolved promise is the whole promise.
    for (let i = 0; i < 20; i++) {
      await b.bus.subscribe(`room-${i}`);
      (i % 2 === 0 ? a : c).bus.publish(`room-${i}`, `hello-${i}`);
    }
    await eventually(() => b.got.length === 20, 5000, "one envelope per room");
    for (let i = 0; i < 20; i++) {
      const got = b.got.filter((e) => e.room === `room-${i}`);
      assert.deepEqual(got.map((e) => [e.frame, e.origin]), [
        [`hello-${i}`, (i % 2 === 0 ? a : c).bus.instanceId],
      ]);
    }
  },

  "rooms not subscribed, or unsubscribed, are not delivered, and show no gap": async (
    [a, b, c],
  ) => {
    await b.bus.subscribe("mine");
    await c.bus.subscribe("mine");
    a.bus.publish("other", "never subscribed");
    a.bus.publish("mine", "one");
    await eventually(() => frames(b, "mine").includes("one"), 5000, "one");
    await b.bus.unsubscribe("mine");
    a.bus.publish("mine", "while away");
    // Once c has it, the transport has carried it: b missed it for good.
    await barrier(a, c, "mine");
    await b.bus.subscribe("mine");
    a.bus.publish("mine", "two");
    await eventually(() => frames(b, "mine").includes("two"), 5000, "two");
    // "while away" came before "two" from the same publisher in the same room.
    assert.deepEqual(frames(b, "mine"), ["one", "two"]);
    await b.bus.subscribe("late");
    await barrier(a, b, "late");
    assert.deepEqual(frames(b, "other"), []);
    await b.bus.unsubscribe("never joined"); // resolves for a room never subscribed
    assert.equal(b.bus.health().gaps, 0, "envelopes not meant for b are not loss");
  },

  "each publisher's envelopes arrive in publish order per room, with rising seq": async (
    [a, b, c],
  ) => {
    await b.bus.subscribe("x");
    await b.bus.subscribe("y");
    const n = 200;
    for (let i = 0; i < n; i++) {
      a.bus.publish(i % 3 === 0 ? "y" : "x", `a${i}`);
      c.bus.publish("x", `c${i}`);
    }
    const expected = n + n;
    await eventually(() => b.got.length >= expected, 10_000, `${expected} envelopes`);
    await barrier(a, b, "x");
    await barrier(c, b, "x");
    for (const [from, room] of [[a, "x"], [a, "y"], [c, "x"]] as const) {
      const got = b.got.filter((e) =>
        e.origin === from.bus.instanceId && e.room === room && !e.frame.startsWith("barrier-")
      );
      const prefix = from === a ? "a" : "c";
      const sent = Array.from({ length: n }, (_, i) => i)
        .filter((i) => from === c || (room === "y") === (i % 3 === 0))
        .map((i) => `${prefix}${i}`);
      assert.deepEqual(got.map((e) => e.frame), sent, `${prefix} in ${room}`);
      for (let i = 1; i < got.length; i++) {
        const [prev, next] = [got[i - 1]!, got[i]!];
        assert.equal(next.epoch, prev.epoch, "one stream per publisher and room");
        assert.ok(next.seq > prev.seq && prev.seq >= 1, `seq rises: ${prev.seq} -> ${next.seq}`);
      }
    }
    assert.equal(b.bus.health().gaps, 0);
  },

  "room, frame, kind and position arrive exactly as published": async ([a, b]) => {
    const rooms = ["plain", "chat:lobby/ünïcödé 🙂"];
    for (const room of rooms) await b.bus.subscribe(room);
    const biggest = "z".repeat(CONTRACT_MAX_ENVELOPE_BYTES / 2);
    assert.ok(a.bus.fits(rooms[1]!, biggest));
    const sent = [...TRICKY_FRAMES, biggest];
    for (const room of rooms) for (const frame of sent) a.bus.publish(room, frame);
    a.bus.publish("plain", "system", { kind: "presence" });
    a.bus.publish("plain", "positioned", {
      kind: "k".repeat(32),
      position: { offset: Number.MAX_SAFE_INTEGER, epoch: "s".repeat(64) },
    });
    await eventually(() => b.got.length === 2 * sent.length + 2, 5000, "every envelope");
    for (const room of rooms) assert.deepEqual(frames(b, room).slice(0, sent.length), sent);
    for (const e of b.got) {
      assert.equal(e.origin, a.bus.instanceId);
      const keys = Object.keys(e).filter((k) => !["epoch", "kind", "position"].includes(k));
      assert.deepEqual(keys.sort(), ["frame", "origin", "room", "seq"]);
    }
    const plain = b.got.filter((e) => e.kind === undefined);
    assert.ok(plain.every((e) => e.position === undefined), "no kind, no position: none added");
    const system = b.got.find((e) => e.frame === "system");
    assert.equal(system?.kind, "presence");
    assert.equal(system?.position, undefined);
    const positioned = b.got.find((e) => e.frame === "positioned");
    assert.equal(positioned?.kind, "k".repeat(32));
    assert.deepEqual(positioned?.position, {
      offset: Number.MAX_SAFE_INTEGER,
      epoch: "s".repeat(64),
    });
  },

  "a frame that does not fit is refused before it uses a sequence number": async ([a, b]) => {
    assert.equal(a.bus.maxEnvelopeBytes, CONTRACT_MAX_ENVELOPE_BYTES);
    await b.bus.subscribe("r");
    const tooBig = "x".repeat(CONTRACT_MAX_ENVELOPE_BYTES);
    // Fewer code units than the limit, more bytes once UTF-8.
    const tooWide = "é".repeat(CONTRACT_MAX_ENVELOPE_BYTES * 0.6);
    for (const frame of [tooBig, tooWide]) {
      assert.equal(a.bus.fits("r", frame), false);
      a.bus.publish("r", frame); // dropped, not thrown
    }
    a.bus.publish("r", "small");
    await eventually(() => frames(b, "r").includes("small"), 5000, "small");
    await barrier(a, b, "r");
    assert.deepEqual(frames(b, "r").filter((f) => !f.startsWith("barrier-")), ["small"]);
    assert.equal(b.bus.health().gaps, 0, "a refused envelope used no sequence number");
  },

  "health reports the transport up, with no gaps or drops": async ([a, b], suite) => {
    await b.bus.subscribe("r");
    await barrier(a, b, "r");
    for (const node of [a, b]) {
      assert.deepEqual(node.bus.health(), {
        status: "ok",
        transport: suite.transport,
        gaps: 0,
        dropped: 0,
      });
    }
  },

  "close is idempotent; a closed bus drops publishes and receives nothing": async ([a, b, c]) => {
    for (const node of [a, b, c]) await node.bus.subscribe("r");
    await a.bus.close();
    await a.bus.close();
    a.bus.publish("r", "after close");
    await a.bus.subscribe("r2");
    await a.bus.unsubscribe("r");
    b.bus.publish("r", "to the living");
    await eventually(() => frames(c, "r").includes("to the living"), 5000, "c still hears b");
    await barrier(c, b, "r");
    assert.deepEqual(frames(b, "r").filter((f) => !f.startsWith("barrier-")), []);
    assert.deepEqual(frames(c, "r").filter((f) => !f.startsWith("barrier-")), ["to the living"]);
    assert.deepEqual(a.got, [], "a closed bus hands nothing to its handler");
  },
};

/** Buses each case opens: three where a third instance matters, two elsewhere. */
const NODES = 3;

/**
 * Registers one Deno test per transport with one step per contract case.
 * Each step opens fresh buses and closes them all, so the step's resource
 * and op sanitizers check that `close` released everything.
 *
 * @example
 * ```ts ignore
 * busContract({ name: "memory", transport: "memory", echoesPositioned: false, open });
 * ```
 */
export function busContract(suite: BusSuite): void {
  Deno.test({
    name: `bus contract: ${suite.name}`,
    ignore: suite.ignore ?? false,
    async fn(t) {
      await suite.before?.();
      try {
        for (const [title, run] of Object.entries(cases)) {
          await t.step(title, async () => {
            const opened = await suite.open(NODES);
            const nodes = opened.buses.map((bus): Node => {
              const node: Node = { bus, got: [] };
              bus.onEnvelope((envelope) => node.got.push(envelope));
              return node;
            });
            assert.equal(nodes.length, NODES, "the factory opens as many buses as asked");
            try {
              await run(nodes as [Node, Node, Node], suite);
            } finally {
              for (const node of nodes) await node.bus.close();
              await opened.close();
            }
          });
        }
      } finally {
        await suite.after?.();
      }
    },
  });
}
