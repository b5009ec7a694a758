/**
 * Watches any number of KV keys although `kv.watch` takes at most 10 per
 * call: keys are packed into groups of ten, one watch per group, and a
 * group's watch is rebuilt (debounced to one rebuild per turn) whenever a
 * key joins or leaves it. A watch reports the current values when it starts,
 * so nothing that changed during a rebuild is missed; each key's versionstamp
 * is remembered so that only keys that really changed are reported.
 *
 * @module
 */

/** `kv.watch` takes at most this many keys. */
export const MAX_WATCH_KEYS = 10;
/** How long a failed watch waits before it is started again. */
const RESTART_MS = 500;

/** Called with the id of a watched key whose value changed (or appeared), and the value. */
export type KeyChangeHandler = (id: string, value: unknown) => void;

/** Options for {@linkcode KeyWatcher}. */
export interface KeyWatcherOptions {
  /** Told when a watch fails (it is restarted). */
  onError?: (err: unknown) => void;
}

interface Group {
  ids: Set<string>;
  /** The running watch; replaced on rebuild. */
  reader: ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]> | undefined;
  running: Promise<void> | undefined;
  dirty: boolean;
  /** Bumped by each rebuild: only the latest one may start a watch. */
  generation: number;
  retry: ReturnType<typeof setTimeout> | undefined;
}

/** Watches keys by id, ten per `kv.watch`. */
export class KeyWatcher {
  readonly #kv: Promise<Deno.Kv>;
  readonly #onError: (err: unknown) => void;
  readonly #keys = new Map<string, Deno.KvKey>();
  readonly #refs = new Map<string, number>();
  readonly #groupOf = new Map<string, Group>();
  readonly #groups = new Set<Group>();
  readonly #stamps = new Map<string, string | null>();
  #handler: KeyChangeHandler = () => {};
  #closed = false;

  /** @param kv the database, or its coming handle @param options error hook */
  constructor(kv: Deno.Kv | Promise<Deno.Kv>, options: KeyWatcherOptions = {}) {
    this.#kv = Promise.resolve(kv);
    // A database that fails to open fails each watch (reported, retried), not the process.
    this.#kv.catch(() => {});
    this.#onError = options.onError ?? (() => {});
  }

  /** Sets the one change handler. */
  onChange(handler: KeyChangeHandler): void {
    this.#handler = handler;
  }

  /** Keys watched. */
  get size(): number {
    return this.#keys.size;
  }

  /** Watches (the reference count of) `id` at `key`. */
  add(id: string, key: Deno.KvKey): void {
    if (this.#closed) return;
    const refs = this.#refs.get(id) ?? 0;
    this.#refs.set(id, refs + 1);
    if (refs > 0) return;
    this.#keys.set(id, key);
    let group: Group | undefined;
    for (const candidate of this.#groups) {
      if (candidate.ids.size < MAX_WATCH_KEYS) {
        group = candidate;
        break;
      }
    }
    if (group === undefined) {
      group = {
        ids: new Set(),
        reader: undefined,
        running: undefined,
        dirty: false,
        generation: 0,
        retry: undefined,
      };
      this.#groups.add(group);
    }
    group.ids.add(id);
    this.#groupOf.set(id, group);
    this.#rebuildSoon(group);
  }

  /** Drops one reference to `id`; the last one stops watching it. */
  remove(id: string): void {
    const refs = this.#refs.get(id);
    if (refs === undefined) return;
    if (refs > 1) {
      this.#refs.set(id, refs - 1);
      return;
    }
    this.#refs.delete(id);
    this.#keys.delete(id);
    this.#stamps.delete(id);
    const group = this.#groupOf.get(id);
    this.#groupOf.delete(id);
    if (group === undefined) return;
    group.ids.delete(id);
    this.#rebuildSoon(group);
  }

  /** Stops every watch. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const running: Promise<void>[] = [];
    for (const group of this.#groups) {
      if (group.retry !== undefined) clearTimeout(group.retry);
      group.ids.clear();
      await group.reader?.cancel().catch(() => {});
      if (group.running !== undefined) running.push(group.running);
    }
    await Promise.allSettled(running);
    this.#groups.clear();
    this.#groupOf.clear();
    this.#keys.clear();
    this.#refs.clear();
  }

  #rebuildSoon(group: Group): void {
    if (group.dirty) return;
    group.dirty = true;
    queueMicrotask(() => void this.#rebuild(group));
  }

  async #rebuild(group: Group): Promise<void> {
    group.dirty = false;
    const generation = ++group.generation;
    if (group.retry !== undefined) {
      clearTimeout(group.retry);
      group.retry = undefined;
    }
    const old = group.reader;
    group.reader = undefined;
    await old?.cancel().catch(() => {});
    await group.running;
    let kv: Deno.Kv;
    try {
      kv = await this.#kv;
    } catch (err) {
      if (!this.#closed && group.generation === generation) this.#failed(group, err);
      return;
    }
    if (this.#closed || group.dirty || group.generation !== generation) return;
    if (group.ids.size === 0) {
      this.#groups.delete(group);
      return;
    }
    const ids = [...group.ids];
    const keys = ids.map((id) => this.#keys.get(id)!);
    let reader: ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]>;
    try {
      reader = kv.watch(keys).getReader();
    } catch (err) {
      this.#failed(group, err);
      return;
    }
    group.reader = reader;
    group.running = this.#pump(group, reader, ids);
  }

  async #pump(
    group: Group,
    reader: ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]>,
    ids: string[],
  ): Promise<void> {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || group.reader !== reader) return;
        value.forEach((entry, i) => {
          const id = ids[i]!;
          if (!this.#keys.has(id) || this.#stamps.get(id) === entry.versionstamp) return;
          this.#stamps.set(id, entry.versionstamp);
          if (entry.value === null) return;
          try {
            this.#handler(id, entry.value);
          } catch (err) {
            this.#onError(err);
          }
        });
      }
    } catch (err) {
      if (group.reader === reader && !this.#closed) this.#failed(group, err);
    } finally {
      reader.releaseLock();
    }
  }

  #failed(group: Group, err: unknown): void {
    this.#onError(err);
    group.reader = undefined;
    if (this.#closed) return;
    group.retry = setTimeout(() => {
      group.retry = undefined;
      this.#rebuildSoon(group);
    }, RESTART_MS);
  }
}
