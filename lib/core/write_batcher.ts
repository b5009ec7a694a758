/**
 * Write coalescing for batching sessions (`?batch=1`, the browser client's
 * default): frames for such a session are held until the end of the current
 * event-loop turn, then written as one newline-separated frame. One timer
 * serves every session, so a fan-out to N batching members costs one timer,
 * not N.
 *
 * What a session holds is a path in a tree the batcher grows once per turn
 * ({@linkcode PendingFrames}): members sent the same frames in the same
 * order stand on the same node, so a room's batched frame is joined once and
 * the same string goes to every such member (the `ws` engine then frames it
 * once too). A member whose frames differ (it joined mid-turn, or also got
 * its own ack) stands on a node of its own, with exactly its frames in
 * order.
 *
 * @module
 */

/** Something holding frames to write later. */
export interface Flushable {
  /** Writes what it holds. Must not throw. */
  flush(): void;
}

/**
 * The frames a session holds this turn, in order: the path from the turn's
 * root to this node. Every session that was sent the same frames in the same
 * order holds the same node, and so gets the same {@linkcode PendingFrames.text}.
 */
export class PendingFrames {
  /** The node before this one, or `null` for the root (no frames). */
  readonly parent: PendingFrames | null;
  /** The last frame of the path ("" at the root). */
  readonly frame: string;
  /** Frames on the path. */
  readonly count: number;
  /** Characters of the joined frame. */
  readonly length: number;
  /** The first child, and the frame that leads to it: a fan-out's only one. */
  #child: PendingFrames | undefined;
  /** Further children, by frame, when members' paths part here. */
  #children: Map<string, PendingFrames> | undefined;
  #text: string | undefined;

  private constructor(parent: PendingFrames | null, frame: string) {
    this.parent = parent;
    this.frame = frame;
    this.count = parent === null ? 0 : parent.count + 1;
    this.length = parent === null || parent.count === 0
      ? frame.length
      : parent.length + 1 + frame.length;
  }

  /** An empty path: a new turn's root. */
  static root(): PendingFrames {
    return new PendingFrames(null, "");
  }

  /** The path of these frames followed by `frame` (the same node for every caller). */
  then(frame: string): PendingFrames {
    const child = this.#child;
    if (child === undefined) return this.#child = new PendingFrames(this, frame);
    if (child.frame === frame) return child;
    let found = this.#children?.get(frame);
    if (found === undefined) {
      found = new PendingFrames(this, frame);
      (this.#children ??= new Map()).set(frame, found);
    }
    return found;
  }

  /** The path's frames joined with `"\n"`, built once for every session holding this node. */
  get text(): string {
    if (this.#text !== undefined) return this.#text;
    const frames = [this.frame];
    let head: string | undefined;
    for (let node = this.parent; node !== null && node.count > 0; node = node.parent) {
      if (node.#text !== undefined) {
        head = node.#text;
        break;
      }
      frames.push(node.frame);
    }
    // One frame: the very string every non-batching member was sent.
    const tail = frames.length === 1 ? frames[0]! : frames.reverse().join("\n");
    this.#text = head === undefined ? tail : `${head}\n${tail}`;
    return this.#text;
  }
}

/**
 * Collects sessions with held frames and flushes them all on the next
 * macrotask: messages fanned out by several frames read in the same turn
 * share one write per member.
 */
export class WriteBatcher {
  #pending = new Set<Flushable>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #root = PendingFrames.root();

  /**
   * Queues a flush of `target` at the end of this turn and returns the turn's
   * empty path, from which `target` builds the path of what it holds.
   */
  begin(target: Flushable): PendingFrames {
    this.#pending.add(target);
    this.#timer ??= setTimeout(() => this.flushAll(), 0);
    return this.#root;
  }

  /** Forgets `target` (it ended or flushed by itself). */
  cancel(target: Flushable): void {
    this.#pending.delete(target);
  }

  /** Flushes everything queued now. */
  flushAll(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const pending = this.#pending;
    this.#pending = new Set();
    // Frames held from here on start a new tree: this one's nodes are written below.
    this.#root = PendingFrames.root();
    for (const target of pending) target.flush();
  }

  /** Flushes what is queued and stops the timer. */
  close(): void {
    this.flushAll();
  }
}
