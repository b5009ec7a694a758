/**
 * Summaries the report is made of: median with min–max over runs, latency
 * percentiles, and per-run ratios (absolute figures drift on shared machines;
 * ratios taken within one round do not).
 *
 * @module
 */

/** A figure measured once per run, summarised as median and range. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  /** The per-run values in run order, so the JSON can be re-analysed. */
  runs: number[];
}

/**
 * Median, min and max of per-run values.
 *
 * @example
 * ```ts
 * import { summarize } from "./_stats.ts";
 * summarize([3, 1, 2]); // { median: 2, min: 1, max: 3, runs: [3, 1, 2] }
 * ```
 */
export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) {
    throw new RangeError("Cannot summarize: current value is an empty list");
  }
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs: [...values] };
}

/**
 * Per-run ratios `a[i] / b[i]`, summarised. Runs where either side is missing
 * are dropped rather than paired with another round's figure.
 */
export function ratioSummary(
  a: readonly (number | undefined)[],
  b: readonly (number | undefined)[],
): Summary | undefined {
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x !== undefined && y !== undefined && y > 0 && Number.isFinite(x)) ratios.push(x / y);
  }
  return ratios.length === 0 ? undefined : summarize(ratios);
}

/**
 * Collects latency samples (milliseconds) in a growable typed array; exact
 * percentiles are cheap at the sample counts one run produces (≤ a few million).
 */
export class LatencyRecorder {
  #data = new Float64Array(1024);
  #count = 0;
  #sorted = true;

  /** Number of samples recorded. */
  get count(): number {
    return this.#count;
  }

  /** Adds one sample in milliseconds. */
  add(ms: number): void {
    if (this.#count === this.#data.length) {
      const grown = new Float64Array(this.#data.length * 2);
      grown.set(this.#data);
      this.#data = grown;
    }
    this.#data[this.#count++] = ms;
    this.#sorted = false;
  }

  /** Nearest-rank percentile, `p` in [0, 100]; `NaN` when empty. */
  percentile(p: number): number {
    if (this.#count === 0) return NaN;
    if (!this.#sorted) {
      this.#data.subarray(0, this.#count).sort();
      this.#sorted = true;
    }
    const rank = Math.ceil((p / 100) * this.#count);
    return this.#data[Math.min(this.#count - 1, Math.max(0, rank - 1))]!;
  }
}
