/**
 * The report: sections of rows (one per server or variant), each figure a
 * median with its min–max over alternating runs; targets as per-run ratios;
 * rendered as a markdown table and written as JSON under bench/results/.
 *
 * @module
 */
import { ratioSummary, summarize, type Summary } from "./_stats.ts";

/** How a row ended. A failed row makes the bench exit non-zero; a skipped one does not. */
export type RowStatus = "ok" | "failed" | "skipped";

/** One column of a section. */
export interface MetricDef {
  key: string;
  label: string;
  /** Decimals shown in the table. */
  digits: number;
}

/** One server (or variant of one) in one scenario. */
export interface Row {
  /** Stable id used by targets, e.g. `ours`, `bare_deno`, `ours_es256_warm`. */
  id: string;
  label: string;
  status: RowStatus;
  reason?: string;
  metrics: Record<string, Summary>;
  /** Figures that are not per-run medians (e.g. the single drop check). */
  notes?: string[];
}

/** One scenario's table. */
export interface Section {
  id: string;
  title: string;
  /** Parameters and method, one line, shown under the title. */
  description: string;
  metrics: MetricDef[];
  rows: Row[];
  /**
   * Start of the run that measured this section, when it differs from the
   * report's (a `--scenarios=` run keeps the other sections of the last one).
   */
  measuredAt?: string;
}

/** A ratio target between two rows of one section. Reported, never asserted. */
export interface TargetDef {
  name: string;
  section: string;
  metric: string;
  numerator: string;
  denominator: string;
  /** `>=`: higher is better; `<=`: lower is better. */
  direction: ">=" | "<=";
  goal: number;
}

/** A target's outcome. */
export interface TargetResult extends TargetDef {
  ratio?: Summary;
  status: "met" | "missed" | "n/a";
  /** `met`, `missed by 12%` or why it could not be computed. */
  verdict: string;
}

/** The whole run, as written to bench/results/latest.json. */
export interface Report {
  startedAt: string;
  mode: "quick" | "full";
  runs: number;
  durationSec: number;
  machine: { cpus: number; os: string; deno: string; node: string; bun?: string };
  /** The sizes used, so a result file can be read without the code that made it. */
  config: unknown;
  sections: Section[];
  targets: TargetResult[];
}

/** Per-run values of a metric on the row `id` of a section, or undefined. */
function runsOf(section: Section | undefined, id: string, metric: string): number[] | undefined {
  const row = section?.rows.find((r) => r.id === id);
  return row?.status === "ok" ? row.metrics[metric]?.runs : undefined;
}

/** Evaluates targets from the per-run values of the same rounds. */
export function evaluateTargets(
  sections: readonly Section[],
  defs: readonly TargetDef[],
): TargetResult[] {
  return defs.map((def) => {
    const section = sections.find((s) => s.id === def.section);
    const num = runsOf(section, def.numerator, def.metric);
    const den = runsOf(section, def.denominator, def.metric);
    if (!num || !den) {
      const missing = !section
        ? `section ${def.section} not run`
        : !num
        ? def.numerator
        : def.denominator;
      return { ...def, status: "n/a", verdict: `n/a (${missing} has no figures)` };
    }
    const ratio = ratioSummary(num, den);
    if (!ratio) return { ...def, status: "n/a", verdict: "n/a (no paired runs)" };
    const met = def.direction === ">=" ? ratio.median >= def.goal : ratio.median <= def.goal;
    const shortfall = def.direction === ">="
      ? (def.goal - ratio.median) / def.goal
      : (ratio.median - def.goal) / def.goal;
    return {
      ...def,
      ratio,
      status: met ? "met" : "missed",
      verdict: met ? "met" : `missed by ${(shortfall * 100).toFixed(1)}%`,
    };
  });
}

function fmt(value: number, digits: number): string {
  if (!Number.isFinite(value)) return "—";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** `median (min–max)`. */
export function formatSummary(s: Summary, digits: number): string {
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

/** Renders the report as markdown. */
export function renderMarkdown(report: Report): string {
  const out: string[] = [];
  out.push(`# Bench results (${report.mode}, ${report.runs} alternating runs per figure)`);
  out.push("");
  out.push(
    `${report.startedAt} · ${report.machine.cpus} cores · deno ${report.machine.deno} · node ${report.machine.node}${
      report.machine.bun === undefined ? "" : ` · bun ${report.machine.bun}`
    } · ${report.durationSec.toFixed(0)} s. Cells: median (min–max).${
      report.sections.some((s) => s.measuredAt !== undefined)
        ? " Sections marked so were measured by an earlier run (a `--scenarios=` run replaces " +
          "only its own sections)."
        : ""
    }`,
  );
  for (const section of report.sections) {
    out.push("", `## ${section.title}`, "");
    if (section.measuredAt !== undefined) {
      out.push(`*Measured by an earlier run, ${section.measuredAt}.*`, "");
    }
    out.push(section.description, "");
    out.push(`| server | ${section.metrics.map((m) => m.label).join(" | ")} | notes |`);
    out.push(`| --- | ${section.metrics.map(() => "---:").join(" | ")} | --- |`);
    for (const row of section.rows) {
      const cells = section.metrics.map((m) => {
        if (row.status !== "ok") return "—";
        const s = row.metrics[m.key];
        return s ? formatSummary(s, m.digits) : "—";
      });
      const notes = row.status === "ok"
        ? (row.notes ?? []).join("; ")
        : `**${row.status}**: ${oneLine(row.reason ?? "")}`;
      out.push(`| ${row.label} | ${cells.join(" | ")} | ${notes} |`);
    }
  }
  out.push("", "## Targets (ratios per run, same round; reported, never asserted)", "");
  out.push("| target | ratio | goal | verdict |");
  out.push("| --- | ---: | ---: | --- |");
  for (const t of report.targets) {
    const ratio = t.ratio ? `${formatSummary(t.ratio, 2)}×` : "—";
    out.push(`| ${t.name} | ${ratio} | ${t.direction} ${t.goal}× | ${t.verdict} |`);
  }
  return out.join("\n") + "\n";
}

function oneLine(text: string): string {
  return text.replaceAll("|", "\\|").replace(/\s*\n\s*/g, " ⏎ ").slice(0, 400);
}

/**
 * The sections of `previous` with this run's sections in place of those with
 * the same id (new ones last), so that running some scenarios does not wipe
 * the published figures of the others. Kept sections say when they were measured.
 */
export function mergeSections(previous: Report, current: readonly Section[]): Section[] {
  const fresh = new Map(current.map((s) => [s.id, s]));
  const merged = previous.sections.map((old) =>
    fresh.get(old.id) ?? { ...old, measuredAt: old.measuredAt ?? previous.startedAt }
  );
  for (const section of current) {
    if (!previous.sections.some((old) => old.id === section.id)) merged.push(section);
  }
  return merged;
}

/** Builds a row from per-run metric records (all runs succeeded). */
export function okRow(id: string, label: string, runs: readonly Record<string, number>[]): Row {
  const metrics: Record<string, Summary> = {};
  for (const key of Object.keys(runs[0] ?? {})) {
    metrics[key] = summarize(runs.map((r) => r[key] ?? NaN));
  }
  return { id, label, status: "ok", metrics };
}
