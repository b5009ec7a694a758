/**
 * History-room load (issue 9): saturated publishing into one room across
 * nodes, and a reconnect storm in which every client comes back with `since`
 * and must recover exactly what it missed. Both check what they received
 * (every message, once, in order) and count what was wrong: a fast wrong
 * answer is a failed row, not a figure.
 *
 * @module
 */
import { cpuMicros, peakRssBytes, resetPeakRss, rssBytes } from "../_proc.ts";
import { LatencyRecorder } from "../_stats.ts";
import type { RunningServer } from "../_servers.ts";
import { type BenchConnection, closeAll, connect, type Frame } from "./_client.ts";
import { phase, sumErrors } from "./fanout.ts";

/** Parameters of one saturated-publish run. */
export interface PublishParams {
  /** Messages in all, split evenly over one publisher per node. */
  messages: number;
  /**
   * Messages in flight per publisher. A message is done when its publisher
   * receives it back: in a history room that is after the store numbered it
   * and the bus carried it, so the loop paces on the whole path.
   */
  window: number;
  /** Bound on the run. */
  timeoutMs: number;
}

/** What one saturated-publish run measured. */
export interface PublishResult {
  /** Messages / (first publish → last delivery to the last member). */
  publishesPerSec: number;
  /** CPU of every node together, per message published. */
  serverCpuUsPerPublish: number;
  /** CPU of redis-server per message published; NaN without one. */
  redisCpuUsPerPublish: number;
  /** Deliveries that never arrived. */
  lost: number;
  /** Deliveries out of order: a publisher's sequence going back, or (history) an offset that is not the previous one + 1. */
  disorder: number;
  errors: number;
}

interface PublishPayload {
  /** Publisher index. */
  p: number;
  /** Its sequence number. */
  s: number;
}

/** Options for {@linkcode runPublishes}. */
export interface RunPublishesOptions {
  /** Node processes whose CPU is summed (one per endpoint). */
  pids: readonly number[];
  /** redis-server's process, when the nodes share one. */
  redisPid?: number;
  /** Whether the room keeps history: then offsets must go up by exactly 1 at every member. */
  history: boolean;
}

/**
 * One run: a publisher and a subscriber on each endpoint, all in one fresh
 * room; every publisher keeps `window` messages in flight until the room has
 * `messages` in all. Every member receives every message.
 */
export async function runPublishes(
  endpoints: readonly RunningServer[],
  params: PublishParams,
  tokens: readonly string[],
  options: RunPublishesOptions,
): Promise<PublishResult> {
  const { messages, window, timeoutMs } = params;
  const room = `hist-pub-${crypto.randomUUID()}`;
  const conns: BenchConnection[] = [];
  try {
    // Subscribers first, then publishers: every member is in before anything is published.
    const subscribers = await Promise.all(
      endpoints.map((e, i) => connect(e, { token: tokens[i % tokens.length], timeoutMs })),
    );
    conns.push(...subscribers);
    const publishers = await Promise.all(
      endpoints.map((e, i) =>
        connect(e, { token: tokens[(endpoints.length + i) % tokens.length], timeoutMs })
      ),
    );
    conns.push(...publishers);
    const joinedAt = new Map<BenchConnection, number>();
    for (const c of conns) {
      const reply = await c.request({ type: "join", room, id: "j" });
      if (reply.type !== "joined") throw new Error(`join refused: ${JSON.stringify(reply)}`);
      joinedAt.set(c, typeof reply.offset === "number" ? reply.offset : 0);
    }

    const quota = Math.ceil(messages / publishers.length);
    const total = quota * publishers.length;
    const expected = total * conns.length;
    const sent = new Array<number>(publishers.length).fill(0);
    const done = new Array<number>(publishers.length).fill(0);
    let delivered = 0;
    let disorder = 0;
    let finish = () => {};
    const publish = (p: number) => {
      const publisher = publishers[p]!;
      while (sent[p]! < quota && sent[p]! - done[p]! < window) {
        const s = sent[p]!++;
        publisher.send({
          type: "message",
          room,
          id: `m${s}`,
          payload: { p, s } satisfies PublishPayload,
        });
      }
    };
    for (const conn of conns) {
      const lastSeq = new Array<number>(publishers.length).fill(-1);
      let lastOffset = joinedAt.get(conn)!;
      let epoch: unknown;
      const own = publishers.indexOf(conn);
      conn.onFrame = (frame) => {
        if (frame.type !== "message") return;
        const payload = frame.payload as PublishPayload;
        if (payload.s <= lastSeq[payload.p]!) disorder++;
        lastSeq[payload.p] = payload.s;
        if (options.history) {
          epoch ??= frame.epoch;
          if (frame.offset !== lastOffset + 1 || frame.epoch !== epoch) disorder++;
          if (typeof frame.offset === "number") lastOffset = frame.offset;
        }
        if (payload.p === own) {
          done[own]!++;
          publish(own);
        }
        if (++delivered === expected) finish();
      };
    }

    const errorsBefore = sumErrors(conns);
    const cpu0 = await sumCpu(options.pids);
    const redis0 = options.redisPid === undefined ? NaN : await cpuMicros(options.redisPid);
    const start = performance.now();
    await phase(timeoutMs, (resolve) => {
      finish = resolve;
      for (let p = 0; p < publishers.length; p++) publish(p);
    });
    const elapsed = performance.now() - start;
    const cpu1 = await sumCpu(options.pids);
    const redis1 = options.redisPid === undefined ? NaN : await cpuMicros(options.redisPid);
    return {
      publishesPerSec: (total / elapsed) * 1000,
      serverCpuUsPerPublish: (cpu1 - cpu0) / total,
      redisCpuUsPerPublish: (redis1 - redis0) / total,
      lost: expected - delivered,
      disorder,
      errors: sumErrors(conns) - errorsBefore,
    };
  } finally {
    await closeAll(conns);
  }
}

async function sumCpu(pids: readonly number[]): Promise<number> {
  const each = await Promise.all(pids.map((pid) => cpuMicros(pid)));
  return each.reduce((a, b) => a + b, 0);
}

/** Parameters of one reconnect storm. */
export interface StormParams {
  /** Clients in the room, all dropped and all reconnecting at once. */
  clients: number;
  /** Messages published while every client is away (through `POST /api/publish`). */
  missed: number;
  /** Handshakes in flight while reconnecting. */
  concurrency: number;
  /** Bound on each phase. */
  timeoutMs: number;
}

/** What one reconnect storm measured. */
export interface StormResult {
  /** First reconnect → every client back in the room with everything it missed. */
  recoveredMs: number;
  /** One client's reconnect start → its last missed message (or, without history, its `joined`). */
  clientP50Ms: number;
  clientP99Ms: number;
  /** Server CPU over the storm: handshakes, joins and replays. */
  serverCpuMs: number;
  /** Highest RSS during the storm (VmHWM, reset just before it when the kernel allows). */
  peakRssBytes: number;
  /** RSS just before the storm. */
  rssBeforeBytes: number;
  /** Whether the peak covers the storm alone (else the process's whole life). */
  peakIsStormOnly: boolean;
  /**
   * Problems found: clients that did not get exactly what they should (none
   * missing, none extra, in order), clients not back in time, error frames.
   */
  wrong: number;
  /** What was wrong with the first of them. */
  firstWrong?: string;
}

/** Options for {@linkcode runStorm}. */
export interface RunStormOptions {
  /** Bearer for `POST /api/publish` (the server's API_KEY). */
  apiKey: string;
  /**
   * The room keeps history: clients rejoin with `since` and must get
   * `recovered: true` and exactly the missed messages. Without it they
   * rejoin plainly (the control: what a reconnect costs with nothing to
   * recover) and must get nothing.
   */
  history: boolean;
}

interface Position {
  offset: number;
  epoch: string;
}

/**
 * One storm: `clients` connect and join one fresh room, all disconnect,
 * `missed` messages are published to the empty room, then all reconnect and
 * rejoin with `since` = the position their `joined` gave them.
 */
export async function runStorm(
  server: RunningServer,
  params: StormParams,
  tokens: readonly string[],
  options: RunStormOptions,
): Promise<StormResult> {
  const { clients, missed, concurrency, timeoutMs } = params;
  const room = `storm-${crypto.randomUUID()}`;
  const positions = await joinAndDrop(server, room, clients, tokens, params);
  const published = await publishMissed(server, room, missed, options);
  if (options.history) {
    for (const [k, got] of published.entries()) {
      const expected = positions[0]!.offset + 1 + k;
      if (got.offset !== expected || got.epoch !== positions[0]!.epoch) {
        throw new Error(`missed message ${k + 1} got ${JSON.stringify(got)}, expected ${expected}`);
      }
    }
  }

  const conns: BenchConnection[] = [];
  const checks: StormClient[] = [];
  const latency = new LatencyRecorder();
  const wrongs: string[] = [];
  /** Clients done, rightly or wrongly. */
  let finished = 0;
  // Set when the phase ends, in time or not: a late handshake is closed, not counted.
  let stopped = false;
  let allDone = () => {};
  const peakIsStormOnly = await resetPeakRss(server.pid);
  const rssBeforeBytes = await rssBytes(server.pid);
  const cpu0 = await cpuMicros(server.pid);
  const start = performance.now();
  try {
    await phase(timeoutMs, (resolve) => {
      allDone = resolve;
      let next = 0;
      const worker = async () => {
        while (!stopped && next < clients) {
          const i = next++;
          const began = performance.now();
          let conn: BenchConnection;
          try {
            conn = await connect(server, { token: tokens[i % tokens.length], timeoutMs });
          } catch (err) {
            wrongs.push(`client ${i}: ${err instanceof Error ? err.message : String(err)}`);
            continue;
          }
          if (stopped) {
            conn.close();
            break;
          }
          conns.push(conn);
          const check = new StormClient(i, positions[i]!, missed, options.history, () => {
            latency.add(performance.now() - began);
            if (++finished === clients) allDone();
          });
          conn.onFrame = (frame) => check.receive(frame);
          checks.push(check);
          conn.send({
            type: "join",
            room,
            id: `r${i}`,
            ...(options.history ? { since: positions[i] } : {}),
          });
        }
      };
      for (let w = 0; w < Math.min(concurrency, clients); w++) void worker();
    });
    stopped = true;
    const recoveredMs = performance.now() - start;
    const cpu1 = await cpuMicros(server.pid);
    const peak = await peakRssBytes(server.pid);
    // Anything sent twice or past the missed ones would arrive right behind them.
    await new Promise((r) => setTimeout(r, 100));
    for (const c of checks) {
      const problem = c.problem();
      if (problem !== undefined) wrongs.push(problem);
    }
    if (finished < clients) wrongs.push(`${clients - finished} clients had not recovered`);
    const errors = sumErrors(conns);
    if (errors > 0) wrongs.push(`${errors} error frames`);
    return {
      recoveredMs,
      clientP50Ms: latency.percentile(50),
      clientP99Ms: latency.percentile(99),
      serverCpuMs: (cpu1 - cpu0) / 1000,
      peakRssBytes: peak,
      rssBeforeBytes,
      peakIsStormOnly,
      wrong: wrongs.length,
      ...(wrongs.length > 0 ? { firstWrong: wrongs[0] } : {}),
    };
  } finally {
    await closeAll(conns);
  }
}

/** Checks one reconnecting client's frames against what it must receive. */
class StormClient {
  #joined = false;
  #received = 0;
  #problem: string | undefined;
  #complete = false;
  readonly #index: number;
  readonly #since: Position;
  readonly #missed: number;
  readonly #history: boolean;
  readonly #onComplete: () => void;

  constructor(
    index: number,
    since: Position,
    missed: number,
    history: boolean,
    onComplete: () => void,
  ) {
    this.#index = index;
    this.#since = since;
    this.#missed = missed;
    this.#history = history;
    this.#onComplete = onComplete;
  }

  receive(frame: Frame): void {
    if (frame.type === "joined") {
      if (this.#joined) return this.#fail("a second joined");
      this.#joined = true;
      if (this.#history && (frame.recovered !== true || frame.missed !== this.#missed)) {
        return this.#fail(
          `joined with recovered ${String(frame.recovered)}, missed ${String(frame.missed)}`,
        );
      }
      if (!this.#history || this.#missed === 0) this.#completed();
      return;
    }
    if (frame.type !== "message") return;
    if (!this.#joined) return this.#fail("a message before joined");
    const n = this.#received++;
    if (!this.#history) return this.#fail("a message in a room without history");
    if (n >= this.#missed) return this.#fail(`message ${n + 1} of ${this.#missed}`);
    const payload = frame.payload as { s?: unknown };
    if (
      frame.offset !== this.#since.offset + 1 + n || frame.epoch !== this.#since.epoch ||
      payload.s !== n
    ) {
      return this.#fail(
        `message ${n + 1} has offset ${String(frame.offset)} and s ${String(payload.s)}, ` +
          `expected ${this.#since.offset + 1 + n} and ${n}`,
      );
    }
    if (n + 1 === this.#missed) this.#completed();
  }

  /** Why this client's stream was wrong, if it was. */
  problem(): string | undefined {
    return this.#problem;
  }

  #completed(): void {
    if (this.#complete || this.#problem !== undefined) return;
    this.#complete = true;
    this.#onComplete();
  }

  #fail(what: string): void {
    this.#problem ??= `client ${this.#index}: ${what}`;
    // Counted as finished, so a wrong run ends at once instead of at the timeout.
    if (this.#complete) return;
    this.#complete = true;
    this.#onComplete();
  }
}

/**
 * Connects and joins `clients` to `room`, remembers each one's position from
 * its `joined`, then drops them all and waits until the server has let go.
 */
async function joinAndDrop(
  server: RunningServer,
  room: string,
  clients: number,
  tokens: readonly string[],
  params: StormParams,
): Promise<Position[]> {
  const positions = new Array<Position>(clients);
  const conns: BenchConnection[] = [];
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < clients) {
      const i = next++;
      try {
        const conn = await connect(server, {
          token: tokens[i % tokens.length],
          timeoutMs: params.timeoutMs,
        });
        conns.push(conn);
        const reply = await conn.request({ type: "join", room, id: `j${i}` }, params.timeoutMs);
        if (reply.type !== "joined") throw new Error(`join refused: ${JSON.stringify(reply)}`);
        positions[i] = {
          offset: typeof reply.offset === "number" ? reply.offset : 0,
          epoch: typeof reply.epoch === "string" ? reply.epoch : "none",
        };
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(params.concurrency, clients) }, worker));
  await closeAll(conns);
  if (failure !== undefined) throw failure;
  await serverHasNoConnections(server, params.timeoutMs);
  return positions;
}

/** Polls /healthz until the server holds no connection (their closes are handled). */
async function serverHasNoConnections(server: RunningServer, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (true) {
    const res = await fetch(`${server.httpUrl}/healthz`);
    const health = await res.json() as { connections?: number };
    if (health.connections === 0) return;
    if (performance.now() > deadline) {
      throw new Error(`the server still holds ${health.connections} connections`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Publishes `count` messages one after another through `POST /api/publish`. */
async function publishMissed(
  server: RunningServer,
  room: string,
  count: number,
  options: RunStormOptions,
): Promise<Partial<Position>[]> {
  const out: Partial<Position>[] = [];
  for (let s = 0; s < count; s++) {
    const res = await fetch(`${server.httpUrl}/api/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${options.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ room, payload: { s } }),
    });
    const body = await res.json() as Partial<Position>;
    if (res.status !== 202) {
      throw new Error(`POST /api/publish answered ${res.status}: ${JSON.stringify(body)}`);
    }
    out.push(body);
  }
  return out;
}
