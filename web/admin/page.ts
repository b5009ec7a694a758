/// <reference lib="dom" />
/*! Includes uPlot 1.6.32, (c) 2025 Leon Sorokin, MIT License, https://github.com/leeoniya/uPlot */
/**
 * The admin page's script (browser only). It asks for the API key or an admin
 * JWT, keeps it in a variable of this module (never in the URL, storage or a
 * cookie), polls `GET /api/admin/stats` once a second and draws tiles, uPlot
 * charts and tables. Rates come from the difference between two snapshots of
 * the same instance.
 *
 * `deno task build:admin` bundles this file, uPlot and the CSS into
 * `web/admin/admin.js` and `web/admin/admin.css` (committed; a test fails
 * when they are stale). Every piece of server data reaches the DOM through
 * `textContent`. This file lives outside `lib/` because it needs the DOM
 * library, which `deno task check` gives it in a program of its own (`deno
 * check web/`): added to the server's program, it would change the types of
 * Deno's own stream APIs.
 *
 * To show a new figure: a tile goes in {@linkcode TILES}, a chart in
 * {@linkcode CHARTS}, a keyed counter in {@linkcode KEYED_TABLES}. Figures
 * nobody listed (new counters, the feed's `sections` such as the history
 * store's and presence's) are shown anyway, as generic tables under
 * "More figures".
 *
 * @module
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./page.css";
import type { AdminStats, RoomRow } from "../../lib/http/admin/stats.ts";

const FEED = "/api/admin/stats";
const POLL_MS = 1000;
/** Points kept per chart: two minutes at one sample a second. */
const WINDOW = 120;

// ---- what the page shows ----

/** Reads one number from a snapshot and, for rates, the snapshot before it. */
type Read = (now: AdminStats, before: AdminStats | undefined) => number;

function counter(name: string): (s: AdminStats) => number {
  return (s) => s.counters[name] ?? 0;
}

function keyedSum(name: string): (s: AdminStats) => number {
  return (s) => Object.values(s.keyed[name] ?? {}).reduce((a, b) => a + b, 0);
}

/** Per-second rate of a cumulative figure between two snapshots of one instance. */
function perSec(read: (s: AdminStats) => number): Read {
  return (now, before) => {
    if (before === undefined) return 0;
    const seconds = (now.at - before.at) / 1000;
    // A counter that went down belongs to a restarted instance: no rate this time.
    return seconds > 0 ? Math.max(0, (read(now) - read(before)) / seconds) : 0;
  };
}

interface Tile {
  id: string;
  label: string;
  /** The figure, and an optional small line under it. */
  show(
    now: AdminStats,
    before: AdminStats | undefined,
  ): { text: string; value: number; note?: string };
  tone?: (now: AdminStats) => "ok" | "bad" | undefined;
}

function numberTile(id: string, label: string, read: Read, format = formatCount): Tile {
  return {
    id,
    label,
    show(now, before) {
      const value = read(now, before);
      return { text: format(value), value };
    },
  };
}

/** The tiles along the top, in order. */
const TILES: Tile[] = [
  numberTile("connections", "Connections", (s) => s.connections),
  numberTile("rooms", "Rooms", (s) => s.rooms),
  numberTile("messages-in", "Messages in /s", perSec(counter("messagesIn")), formatRate),
  numberTile("messages-out", "Messages out /s", perSec(counter("messagesOut")), formatRate),
  numberTile("bytes-out", "Bytes out /s", perSec(counter("bytesOut")), formatBytes),
  numberTile("joins", "Joins /s", perSec(counter("joins")), formatRate),
  numberTile("leaves", "Leaves /s", perSec(counter("leaves")), formatRate),
  // The bus, once: its status and transport, with its gaps and drops (and detail) beneath.
  {
    id: "bus",
    label: "Bus",
    show: (s) => ({
      text: `${s.bus.status} · ${s.bus.transport}`,
      value: s.bus.status === "ok" ? 1 : 0,
      note: `${formatCount(s.bus.gaps)} gaps · ${formatCount(s.bus.dropped)} dropped${
        s.bus.detail === undefined ? "" : ` · ${s.bus.detail}`
      }`,
    }),
    tone: (s) => s.bus.status === "ok" && s.bus.gaps === 0 && s.bus.dropped === 0 ? "ok" : "bad",
  },
  // Uptime is in the header, beside the instance it belongs to.
];

interface ChartSeries {
  label: string;
  color: string;
  read: Read;
}

interface ChartDef {
  id: string;
  title: string;
  series: ChartSeries[];
}

/** The charts, in order; each keeps the last {@linkcode WINDOW} samples. */
const CHARTS: ChartDef[] = [
  {
    id: "connections",
    title: "Connections",
    series: [{ label: "open", color: "#4f5bd5", read: (s) => s.connections }],
  },
  {
    id: "messages",
    title: "Messages / s",
    series: [
      { label: "in", color: "#1f9d55", read: perSec(counter("messagesIn")) },
      { label: "out", color: "#4f5bd5", read: perSec(counter("messagesOut")) },
    ],
  },
  {
    id: "bytes",
    title: "Bytes / s",
    series: [
      { label: "in", color: "#1f9d55", read: perSec(counter("bytesIn")) },
      { label: "out", color: "#4f5bd5", read: perSec(counter("bytesOut")) },
    ],
  },
  {
    id: "joins",
    title: "Joins and leaves / s",
    series: [
      { label: "joins", color: "#1f9d55", read: perSec(counter("joins")) },
      { label: "leaves", color: "#d98e04", read: perSec(counter("leaves")) },
    ],
  },
  {
    id: "rooms",
    title: "Rooms",
    series: [{ label: "with members here", color: "#4f5bd5", read: (s) => s.rooms }],
  },
  {
    id: "refusals",
    title: "Refusals and limits / s",
    series: [
      { label: "handshakes refused", color: "#d64545", read: perSec(keyedSum("refusals")) },
      { label: "auth failures", color: "#a23bc4", read: perSec(keyedSum("authFailures")) },
      { label: "rate limited", color: "#d98e04", read: perSec(counter("rateLimited")) },
    ],
  },
];

/** Keyed counters with a table of their own: total and rate per key. */
const KEYED_TABLES: { key: string; title: string; column: string }[] = [
  { key: "refusals", title: "Handshake refusals", column: "HTTP status" },
  { key: "authFailures", title: "Auth failures", column: "reason" },
  { key: "closes", title: "Closes", column: "close code" },
  { key: "denials", title: "Join denials", column: "code" },
];

/** Plain counters shown in the "Limits and protections" table. */
const LIMIT_COUNTERS: { key: string; label: string }[] = [
  { key: "rateLimited", label: "rate-limit hits" },
  { key: "floodClosed", label: "closed for flooding (4429)" },
  { key: "slowConsumers", label: "slow consumers closed (1008)" },
  { key: "framesTooBig", label: "frames too big (1009)" },
  { key: "badRequests", label: "bad requests" },
];

/** Counters the tiles and charts above already show. */
const CHARTED_COUNTERS = new Set([
  "joins",
  "leaves",
  "messagesIn",
  "messagesOut",
  "bytesIn",
  "bytesOut",
]);

/** Top-level fields of the feed that have a dedicated place on the page. */
const KNOWN_FIELDS = new Set([
  "status",
  "uptimeMs",
  "connections",
  "rooms",
  "instanceId",
  "bus",
  "at",
  "counters",
  "keyed",
  "busiest",
  "sections",
]);

// ---- formatting ----

function formatCount(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function formatRate(n: number): string {
  return n >= 100 ? formatCount(n) : (Math.round(n * 10) / 10).toLocaleString("en-US");
}

function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h}h ${m % 60}m` : `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** A feed key as people read it: `storeStatus` → "store status", `bus_error` → "bus error". */
function humanize(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replaceAll("_", " ").toLowerCase();
}

/** A chart's time axis: whole seconds, as a clock. */
function clockLabel(seconds: number): string {
  return new Date(seconds * 1000).toLocaleTimeString("en-GB", { hour12: false });
}

function formatScalar(value: unknown): string {
  if (typeof value === "number") {
    return Number.isInteger(value) ? formatCount(value) : formatRate(value);
  }
  return String(value);
}

// ---- DOM helpers ----

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new TypeError(`Cannot start the admin page: #${id} is missing`);
  return el as T;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { className?: string; text?: string; id?: string } = {},
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.className !== undefined) el.className = props.className;
  if (props.text !== undefined) el.textContent = props.text;
  if (props.id !== undefined) el.id = props.id;
  return el;
}

/** Replaces a table's rows; the first cell of each row is its `data-key`. */
function fillTable(
  table: HTMLTableElement,
  head: string[],
  rows: string[][],
  empty = "none yet",
): void {
  const thead = element("thead");
  const headRow = element("tr");
  for (const title of head) headRow.append(element("th", { text: title }));
  thead.append(headRow);
  const tbody = element("tbody");
  for (const row of rows) {
    const tr = element("tr");
    tr.dataset.key = row[0] ?? "";
    for (const cell of row) tr.append(element("td", { text: cell }));
    tbody.append(tr);
  }
  if (rows.length === 0) {
    const td = element("td", { className: "empty", text: empty });
    td.colSpan = head.length;
    const tr = element("tr");
    tr.append(td);
    tbody.append(tr);
  }
  table.replaceChildren(thead, tbody);
}

/** A titled panel holding one table, appended to `parent`. */
function tablePanel(parent: HTMLElement, id: string, title: string): HTMLTableElement {
  const panel = element("div", { className: "panel" });
  const table = element("table", { id });
  panel.append(element("h3", { text: title }), table);
  parent.append(panel);
  return table;
}

// ---- the page ----

const ui = {
  login: byId<HTMLElement>("login"),
  form: byId<HTMLFormElement>("login-form"),
  key: byId<HTMLInputElement>("key"),
  error: byId<HTMLElement>("error"),
  dashboard: byId<HTMLElement>("dashboard"),
  instance: byId<HTMLElement>("instance"),
  status: byId<HTMLElement>("status"),
  logout: byId<HTMLButtonElement>("logout"),
  notice: byId<HTMLElement>("notice"),
  tiles: byId<HTMLElement>("tiles"),
  charts: byId<HTMLElement>("charts"),
  tables: byId<HTMLElement>("tables"),
  byMembers: byId<HTMLTableElement>("rooms-by-members"),
  byRate: byId<HTMLTableElement>("rooms-by-rate"),
  moreTitle: byId<HTMLElement>("more-title"),
  more: byId<HTMLElement>("more"),
};

/** The credential, in memory only; null when signed out. */
let credential: string | null = null;
let pollTimer: ReturnType<typeof setTimeout> | undefined;
/** The previous snapshot, for rates; only ever from the same instance as the next one. */
let previous: AdminStats | undefined;

const tileOutputs = new Map<
  string,
  { tile: HTMLElement; output: HTMLOutputElement; note: HTMLElement }
>();
for (const tile of TILES) {
  const box = element("div", { className: "tile", id: `tile-${tile.id}` });
  const output = element("output");
  const note = element("div", { className: "note" });
  box.append(element("div", { className: "label", text: tile.label }), output, note);
  ui.tiles.append(box);
  tileOutputs.set(tile.id, { tile: box, output, note });
}

interface Chart {
  def: ChartDef;
  figure: HTMLElement;
  plot: uPlot;
  /** Time (seconds) then one array per series, as uPlot wants. */
  data: number[][];
}

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function chartWidth(figure: HTMLElement): number {
  return Math.max(200, figure.clientWidth - 2);
}

const charts: Chart[] = [];

function createCharts(): void {
  const ink = cssVar("--muted", "#6b7185");
  const grid = cssVar("--line", "#e3e5ee");
  const axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  for (const def of CHARTS) {
    const figure = element("figure", { className: "panel", id: `chart-${def.id}` });
    figure.append(element("figcaption", { text: def.title }));
    ui.charts.append(figure);
    const data: number[][] = [[], ...def.series.map(() => [])];
    const plot = new uPlot(
      {
        width: chartWidth(figure),
        height: 150,
        series: [
          {},
          ...def.series.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: 2,
            points: { show: false },
          })),
        ],
        // Counts and rates are never negative; a flat zero line still gets a visible axis.
        scales: {
          y: {
            range: (
              _u: uPlot,
              _min: number,
              max: number,
            ): uPlot.Range.MinMax => [0, Math.max(1, max * 1.15)],
          },
        },
        axes: [
          // Whole seconds as a clock: no ":32.000" ticks in the first seconds.
          {
            ...axis,
            incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600],
            values: (_u: uPlot, splits: number[]) => splits.map(clockLabel),
          },
          { ...axis, size: 50 },
        ],
        legend: { live: false },
        cursor: { show: false },
      },
      data as uPlot.AlignedData,
      figure,
    );
    charts.push({ def, figure, plot, data });
  }
}

function resizeCharts(): void {
  for (const chart of charts) chart.plot.setSize({ width: chartWidth(chart.figure), height: 150 });
}

function resetCharts(): void {
  for (const chart of charts) {
    for (const column of chart.data) column.length = 0;
    chart.plot.setData(chart.data as uPlot.AlignedData);
    delete chart.figure.dataset.last;
    chart.figure.dataset.points = "0";
  }
}

function renderCharts(now: AdminStats, before: AdminStats | undefined): void {
  for (const chart of charts) {
    const { data, def } = chart;
    data[0]!.push(now.at / 1000);
    def.series.forEach((s, i) => data[i + 1]!.push(s.read(now, before)));
    if (data[0]!.length > WINDOW) { for (const column of data) column.shift(); }
    chart.plot.setData(data as uPlot.AlignedData);
    chart.figure.dataset.points = String(data[0]!.length);
    chart.figure.dataset.last = String(data[1]!.at(-1) ?? 0);
  }
}

const keyedTables = new Map<string, HTMLTableElement>();
for (const { key, title } of KEYED_TABLES) {
  keyedTables.set(key, tablePanel(ui.tables, `table-${key}`, title));
}
const limitsTable = tablePanel(ui.tables, "table-limits", "Limits and protections");

function keyedRows(now: AdminStats, before: AdminStats | undefined, key: string): string[][] {
  const map = now.keyed[key] ?? {};
  return Object.entries(map)
    .sort((a, b) => b[1] - a[1])
    .map(([label, total]) => {
      const rate = perSec((s) => s.keyed[key]?.[label] ?? 0)(now, before);
      return [label, formatCount(total), formatRate(rate)];
    });
}

function roomRows(rows: RoomRow[]): string[][] {
  return rows.map((r) => [r.room, formatCount(r.members), formatRate(r.perSec)]);
}

/** The generic part: every figure without a dedicated place (see the module comment). */
function renderMore(now: AdminStats, before: AdminStats | undefined): void {
  const panels: [string, string, string[], string[][]][] = [];
  const otherCounters = Object.entries(now.counters)
    .filter(([name]) => !CHARTED_COUNTERS.has(name) && !LIMIT_COUNTERS.some((c) => c.key === name))
    .map((
      [name, total],
    ) => [humanize(name), formatCount(total), formatRate(perSec(counter(name))(now, before))]);
  if (otherCounters.length > 0) {
    panels.push(["counters", "Other counters", ["counter", "total", "/s"], otherCounters]);
  }
  for (const key of Object.keys(now.keyed)) {
    if (keyedTables.has(key)) continue;
    panels.push([
      `keyed-${key}`,
      humanize(key),
      ["key", "total", "/s"],
      keyedRows(now, before, key),
    ]);
  }
  for (const [name, section] of Object.entries(now.sections)) {
    const rows = Object.entries(section).map((
      [field, value],
    ) => [humanize(field), formatScalar(value)]);
    panels.push([`section-${name}`, humanize(name), ["figure", "value"], rows]);
  }
  // Fields added to the feed later (e.g. to /healthz) before the page learns about them.
  const loose: string[][] = [];
  for (const [field, value] of Object.entries(now as unknown as Record<string, unknown>)) {
    if (KNOWN_FIELDS.has(field)) continue;
    if (typeof value === "object" && value !== null && !Array.isArray(value)) {
      const rows = Object.entries(value)
        .filter(([, v]) => ["number", "string", "boolean"].includes(typeof v))
        .map(([k, v]) => [humanize(k), formatScalar(v)]);
      panels.push([`field-${field}`, humanize(field), ["figure", "value"], rows]);
    } else if (["number", "string", "boolean"].includes(typeof value)) {
      loose.push([humanize(field), formatScalar(value)]);
    }
  }
  if (loose.length > 0) panels.push(["figures", "Other figures", ["figure", "value"], loose]);
  ui.moreTitle.hidden = panels.length === 0;
  ui.more.replaceChildren();
  for (const [id, title, head, rows] of panels) {
    fillTable(tablePanel(ui.more, `more-${id}`, title), head, rows, "nothing yet");
  }
}

function render(now: AdminStats): void {
  let before = previous;
  if (before !== undefined && before.instanceId !== now.instanceId) {
    // Behind a load balancer or `deno serve --parallel` a poll can reach another isolate:
    // its counters are not comparable with the last one's.
    ui.notice.textContent =
      `Now talking to instance ${now.instanceId} (was ${before.instanceId}): rates and charts restarted.`;
    ui.notice.hidden = false;
    resetCharts();
    before = undefined;
  }
  previous = now;
  // The short id (the whole one on hover): a UUID would wrap over several lines on a phone.
  ui.instance.textContent = `instance ${now.instanceId.slice(0, 8)} · up ${
    formatDuration(now.uptimeMs)
  }`;
  ui.instance.title = `instance ${now.instanceId}`;
  ui.instance.dataset.instance = now.instanceId;
  for (const tile of TILES) {
    const slot = tileOutputs.get(tile.id);
    if (slot === undefined) continue;
    const { text, value, note = "" } = tile.show(now, before);
    slot.output.textContent = text;
    slot.note.textContent = note;
    slot.output.dataset.value = String(value);
    const tone = tile.tone?.(now);
    if (tone === undefined) delete slot.tile.dataset.tone;
    else slot.tile.dataset.tone = tone;
  }
  renderCharts(now, before);
  for (const [key, table] of keyedTables) {
    fillTable(
      table,
      [KEYED_TABLES.find((t) => t.key === key)?.column ?? key, "total", "/s"],
      keyedRows(now, before, key),
    );
  }
  fillTable(
    limitsTable,
    ["counter", "total", "/s"],
    LIMIT_COUNTERS.map(({ key, label }) => [
      label,
      formatCount(now.counters[key] ?? 0),
      formatRate(perSec(counter(key))(now, before)),
    ]),
  );
  fillTable(
    ui.byMembers,
    ["room", "members", "msg/s"],
    roomRows(now.busiest.byMembers),
    "no rooms",
  );
  fillTable(ui.byRate, ["room", "members", "msg/s"], roomRows(now.busiest.byRate), "no messages");
  renderMore(now, before);
  ui.dashboard.dataset.samples = String(Number(ui.dashboard.dataset.samples ?? "0") + 1);
}

// ---- talking to the server ----

type Loaded = { ok: true; stats: AdminStats } | { ok: false; status: number; message: string };

async function load(key: string): Promise<Loaded> {
  let res: Response;
  try {
    res = await fetch(FEED, {
      headers: { authorization: `Bearer ${key}` },
      cache: "no-store",
      credentials: "omit",
    });
  } catch (err) {
    const message = err instanceof TypeError && /header/i.test(err.message)
      ? "The key contains characters that cannot be sent in a header."
      : "Cannot reach the server.";
    return { ok: false, status: 0, message };
  }
  if (res.ok) return { ok: true, stats: await res.json() as AdminStats };
  await res.body?.cancel();
  const message = res.status === 401
    ? "Wrong API key or token: the server refused it (401)."
    : res.status === 403
    ? "This token is valid but does not carry the admin role (403)."
    : res.status === 404
    ? "The admin API is disabled on this server: set API_KEY or ADMIN_ROLE (404)."
    : `The server answered ${res.status}.`;
  return { ok: false, status: res.status, message };
}

function setStatus(state: "signed-out" | "live" | "offline", text: string): void {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function signOut(error = ""): void {
  credential = null;
  clearTimeout(pollTimer);
  pollTimer = undefined;
  previous = undefined;
  resetCharts();
  ui.dashboard.hidden = true;
  ui.dashboard.dataset.samples = "0";
  ui.notice.hidden = true;
  ui.login.hidden = false;
  ui.logout.hidden = true;
  ui.error.textContent = error;
  ui.instance.textContent = "not signed in";
  delete ui.instance.dataset.instance;
  setStatus("signed-out", "");
  ui.key.focus();
}

async function poll(key: string): Promise<void> {
  const result = await load(key);
  if (credential !== key) return; // signed out (or in again) meanwhile
  if (result.ok) {
    render(result.stats);
    setStatus("live", "live");
  } else if (result.status === 401 || result.status === 403 || result.status === 404) {
    signOut(result.message);
    return;
  } else {
    setStatus("offline", `${result.message} Retrying…`);
  }
  pollTimer = setTimeout(() => void poll(key), POLL_MS);
}

ui.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = ui.key.value.trim();
  ui.key.value = "";
  if (key === "") return;
  ui.error.textContent = "Checking…";
  const result = await load(key);
  if (!result.ok) {
    ui.error.textContent = result.message;
    ui.key.focus();
    return;
  }
  credential = key;
  ui.error.textContent = "";
  ui.login.hidden = true;
  ui.dashboard.hidden = false;
  ui.logout.hidden = false;
  if (charts.length === 0) createCharts();
  else resizeCharts();
  render(result.stats);
  setStatus("live", "live");
  pollTimer = setTimeout(() => void poll(key), POLL_MS);
});

ui.logout.addEventListener("click", () => signOut());
addEventListener("resize", () => resizeCharts());
ui.key.focus();
