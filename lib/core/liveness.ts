/**
 * Node liveness over the bus, for state that lives in no shared store: each
 * node publishes a heartbeat on a reserved bus room, and a node not heard
 * from (heartbeat or any other system envelope) for `ttlMs` is taken for
 * dead. socket.io's `ClusterAdapterWithHeartbeat` keeps the same table.
 *
 * The owner decides the cadence (it calls {@linkcode NodeLiveness.beat}) and
 * routes what it hears to {@linkcode NodeLiveness.seen}; the table forgets
 * dead nodes lazily, so it owns no timer.
 *
 * @module
 */
import type { SystemChannel } from "../bus/types.ts";
import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";

/** Options for {@linkcode NodeLiveness}. */
export interface NodeLivenessOptions {
  /** Carries heartbeats; `instanceId` names this node. */
  bus: SystemChannel;
  /** The reserved bus room heartbeats travel on. */
  room: string;
  /** The system envelope kind of heartbeats (the owner routes that kind to `seen`). */
  kind: string;
  /** The heartbeat's frame. */
  frame: string;
  /** How long a node lives without being heard from, in milliseconds. */
  ttlMs: number;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * Which other nodes were heard from within `ttlMs`.
 *
 * @example
 * ```ts ignore
 * const liveness = new NodeLiveness({ bus, room: "$presence", kind: "presence", frame: "{}", ttlMs: 30_000 });
 * await liveness.start();
 * rooms.onSystem("presence", (envelope) => liveness.seen(envelope.origin));
 * liveness.beat(); // every ttlMs / 3
 * liveness.alive(["node-b"]); // Set { "node-b" } while it is heard from
 * await liveness.close();
 * ```
 */
export class NodeLiveness {
  readonly #bus: SystemChannel;
  readonly #room: string;
  readonly #kind: string;
  readonly #frame: string;
  readonly #ttlMs: number;
  readonly #clock: Clock;
  /** Node → the time it stops being alive. */
  readonly #deadlines = new Map<string, number>();
  #lastSweep = 0;

  /** @param options bus, room, kind, frame, TTL and clock */
  constructor(options: NodeLivenessOptions) {
    const { clock = systemClock } = options;
    this.#bus = options.bus;
    this.#room = options.room;
    this.#kind = options.kind;
    this.#frame = options.frame;
    this.#ttlMs = options.ttlMs;
    this.#clock = clock;
  }

  /** Nodes known alive or not yet found expired (for leak tests). */
  get size(): number {
    return this.#deadlines.size;
  }

  /** Starts hearing other nodes' heartbeats. */
  start(): Promise<void> {
    return this.#bus.subscribe(this.#room);
  }

  /** Tells the other nodes this one is alive. */
  beat(): void {
    this.#bus.publish(this.#room, this.#frame, { kind: this.#kind });
  }

  /** `node` was heard from: alive for another `ttlMs`. */
  seen(node: string): void {
    this.#sweep();
    this.#deadlines.set(node, this.#clock.now() + this.#ttlMs);
  }

  /** Which of `nodes` were heard from within `ttlMs`; the others are forgotten. */
  alive(nodes: Iterable<string>): Set<string> {
    const out = new Set<string>();
    for (const node of nodes) if (!this.#expire(node)) out.add(node);
    return out;
  }

  /** Stops hearing heartbeats and forgets every node. */
  close(): Promise<void> {
    this.#deadlines.clear();
    return this.#bus.unsubscribe(this.#room);
  }

  /** Forgets every expired node once per TTL, so nodes that died unasked do not pile up. */
  #sweep(): void {
    const now = this.#clock.now();
    if (now - this.#lastSweep < this.#ttlMs) return;
    this.#lastSweep = now;
    for (const node of [...this.#deadlines.keys()]) this.#expire(node);
  }

  #expire(node: string): boolean {
    const deadline = this.#deadlines.get(node);
    if (deadline !== undefined && deadline > this.#clock.now()) return false;
    this.#deadlines.delete(node);
    return true;
  }
}
