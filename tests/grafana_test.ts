/**
 * `examples/grafana/realtime.json` only queries metrics the server exports:
 * every metric name in every panel's PromQL must appear in the `/metrics`
 * output of a running server that has seen some traffic.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connectAs, join, rawHandshake, startServer } from "./_helpers.ts";

const DASHBOARD = new URL("../examples/grafana/realtime.json", import.meta.url);

interface Panel {
  id?: number;
  type: string;
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

/** Words of PromQL that are neither metrics nor functions. */
const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "and",
  "or",
  "unless",
  "offset",
  "inf",
  "nan",
]);

/**
 * The metric names a PromQL expression reads: identifiers left once string
 * literals, label matchers, range selectors and grouping clauses are removed,
 * that are not followed by `(` (functions, aggregations) and are not keywords.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, " ")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w$.])([A-Za-z_:][\w:]*)\b(?!\s*\()/g)) {
    const word = match[1]!;
    if (!KEYWORDS.has(word.toLowerCase())) names.add(word);
  }
  return [...names];
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every series name `/metrics` can show: histograms add their suffixes. */
function exported(text: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === "histogram" || type === "summary") {
      for (const suffix of ["_bucket", "_sum", "_count"]) names.add(`${name}${suffix}`);
    }
  }
  return names;
}

Deno.test("metricNames reads PromQL", () => {
  assert.deepEqual(
    metricNames(
      'histogram_quantile(0.95, sum by (le) (rate(a_bucket{instance=~"$instance"}[$__rate_interval])))',
    ),
    ["a_bucket"],
  );
  assert.deepEqual(metricNames("count(b == 0) or vector(0)"), ["b"]);
  assert.deepEqual(metricNames("sum(rate(c[5m])) / sum(rate(d[5m]))"), ["c", "d"]);
});

Deno.test("the Grafana dashboard only queries metrics that /metrics exports", async () => {
  const dashboard = JSON.parse(await Deno.readTextFile(DASHBOARD)) as {
    uid: string;
    title: string;
    panels: Panel[];
    templating: { list: { name: string; query?: unknown; definition?: string }[] };
  };
  const panels = allPanels(dashboard.panels);
  const queries = panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr }))
  );
  for (const variable of dashboard.templating.list) {
    if (variable.definition !== undefined) {
      queries.push({ panel: `variable ${variable.name}`, expr: variable.definition });
    }
  }
  assert.ok(queries.length >= 20, "the dashboard has its queries");
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");

  // Traffic first, so that labelled and histogram series have samples too.
  await using ts = await startServer();
  const a = await connectAs(ts, "a");
  await join(a, "r");
  a.send({ type: "message", room: "r", payload: 1 });
  await a.nextOf("message");
  await rawHandshake(ts.port, "/ws?token=bad");
  await a.close();
  const text = await (await fetch(`${ts.httpUrl}/metrics`)).text();
  const names = exported(text);
  for (const { panel, expr } of queries) {
    const used = metricNames(expr.replace(/^label_values\(([^,]+),.*\)$/, "$1"));
    assert.ok(used.length > 0, `${panel}: no metric in ${expr}`);
    for (const name of used) {
      assert.ok(names.has(name), `${panel}: ${name} is not in /metrics (query: ${expr})`);
    }
  }
});
