// glassbox's built-in dashboard: polls /dashboard/data for the samples after the last one it
// has, and /logs for new log lines, and draws everything as SVG. No libraries, nothing fetched
// from anywhere but glassbox itself.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = [
  "#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2",
  "#db2777", "#65a30d", "#ea580c", "#4f46e5", "#0d9488", "#9333ea",
];
const LOG_POLL_MS = 2000;

const state = {
  since: null,
  points: [],
  table: [],
  capacity: 300,
  intervalMs: 1000,
  colors: new Map(),
  sort: { key: "rate", asc: false },
  logsSince: null,
  logs: [],
  logFilterKey: "",
  // Route template -> its family, from the service's route table (the first answer carries it).
  families: new Map(),
  // Injected faults active now or ended within the window: a band on every chart.
  faults: [],
  // The demo burn-rate alert as glassbox evaluates it, and the Prometheus to ask instead.
  alerts: [],
  prometheus: null,
  // The Prometheus' pending and firing alerts while it answers; null when it does not.
  promAlerts: null,
};
const ALERT_POLL_MS = 5000;
// A chart's drawing box (SVG units) and its margins.
const CHART = { W: 560, H: 190, L: 52, R: 8, T: 8, B: 20 };

function routeName(method, route) {
  return method + " " + route;
}

// The page's own requests: the routes the service's table puts in the dashboard's family.
function isOwn(route) {
  return state.families.get(route) === "dashboard";
}

function showOwn() {
  return document.getElementById("own").checked;
}

function colorOf(name) {
  if (!state.colors.has(name)) {
    state.colors.set(name, PALETTE[state.colors.size % PALETTE.length]);
  }
  return state.colors.get(name);
}

// ---- formatting -------------------------------------------------------------------------

function fmtMicros(us) {
  if (us == null) return "–";
  if (us < 1000) return us.toFixed(0) + " µs";
  if (us < 1e6) return (us / 1000).toFixed(us < 1e4 ? 2 : 1) + " ms";
  return (us / 1e6).toFixed(2) + " s";
}

function fmtNumber(n, digits) {
  if (n == null || Number.isNaN(n)) return "–";
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
  if (digits !== undefined) return n.toFixed(digits);
  // Up to two decimals, without trailing zeros: 0.25, 1.5, 3.
  return String(Math.round(n * 100) / 100);
}

function fmtTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false });
}

// ---- charts -----------------------------------------------------------------------------

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

// The smallest round number at or above v whose quarters are round too.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 4, 6, 8, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// Seconds of history on the x axis: what there is, at least a minute, at most the window.
function spanMs() {
  const window = state.capacity * state.intervalMs;
  if (state.points.length < 2) return Math.min(window, 60000);
  const have = state.points[state.points.length - 1].t - state.points[0].t;
  return Math.min(window, Math.max(60000, have));
}

function fmtAgo(ms) {
  if (ms === 0) return "now";
  return ms % 60000 === 0 ? `-${ms / 60000}m` : `-${ms / 1000}s`;
}

// Draws `series` ([{name, color, values: [[t, v], ...]}]) into the figure `id`.
// opts: {log: bool, format: fn(value) -> text}
function drawChart(id, series, opts) {
  const fig = document.getElementById(id);
  const { W, H, L, R, T, B } = CHART;
  let svg = fig.querySelector("svg");
  if (!svg) {
    svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
    fig.appendChild(svg);
    const legend = document.createElement("div");
    legend.className = "legend";
    fig.appendChild(legend);
  }
  svg.replaceChildren();
  const legend = fig.querySelector(".legend");
  legend.replaceChildren();
  const format = opts.format || ((v) => fmtNumber(v));
  const now = state.points.length ? state.points[state.points.length - 1].t : Date.now();
  const span = spanMs();
  const t0 = now - span;
  const x = (t) => L + ((t - t0) / span) * (W - L - R);
  fig.dataset.t0 = String(t0);
  fig.dataset.span = String(span);

  const values = series.flatMap((s) => s.values.map((p) => p[1])).filter((v) => v != null);
  const drawn = series.filter((s) => s.values.length > 0);
  fig.dataset.series = String(drawn.length);
  if (drawn.length === 0) {
    el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "nodata" }, svg).textContent =
      "no data yet";
    return;
  }
  let y, ticks;
  if (opts.log) {
    const positive = values.filter((v) => v > 0);
    const lo = Math.pow(10, Math.floor(Math.log10(Math.max(1, Math.min(...positive)))));
    const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(lo * 10, ...positive))));
    const a = Math.log10(lo), b = Math.log10(hi);
    y = (v) => T + (1 - (Math.log10(Math.max(v, lo)) - a) / (b - a)) * (H - T - B);
    ticks = [];
    for (let e = a; e <= b; e++) ticks.push(Math.pow(10, e));
  } else {
    const hi = niceMax(Math.max(...values, 0));
    y = (v) => T + (1 - v / hi) * (H - T - B);
    ticks = [0, hi / 4, hi / 2, (3 * hi) / 4, hi];
  }
  for (const tick of ticks) {
    const yy = y(tick);
    el("line", { x1: L, x2: W - R, y1: yy, y2: yy, class: "gridline" }, svg);
    el("text", { x: L - 4, y: yy + 3, "text-anchor": "end" }, svg).textContent = format(tick);
  }
  const step = span <= 120000 ? 15000 : span <= 600000 ? 60000 : 300000;
  for (let ago = 0; ago <= span; ago += step) {
    el("text", { x: x(now - ago), y: H - 4, "text-anchor": ago === 0 ? "end" : "middle" }, svg)
      .textContent = fmtAgo(ago);
  }
  // Each injected fault is a shaded band from its start to its end (or now), named at the top.
  for (const f of state.faults) {
    const end = f.ended_ms != null ? f.ended_ms : now;
    if (end < t0) continue;
    const x0 = x(Math.max(f.started_ms, t0)), x1 = x(Math.min(end, now));
    const band = el("rect", {
      x: x0.toFixed(1), y: T, width: Math.max(1, x1 - x0).toFixed(1), height: H - T - B,
      class: "fault",
    }, svg);
    band.dataset.fault = f.name;
    el("title", {}, band).textContent =
      `fault ${f.name}: ${f.kind} on ${f.route || "*"}, ${f.injected} of ${f.seen} affected`;
    // The name inside the band's left edge, or left of its right edge near the chart's end.
    const nearEnd = x0 > W - R - 90;
    el("text", {
      x: (nearEnd ? x1 - 3 : x0 + 3).toFixed(1), y: T + 10, class: "fault-label",
      "text-anchor": nearEnd ? "end" : "start",
    }, svg).textContent = f.name;
  }
  for (const s of drawn) {
    let d = "";
    let previous = null;
    for (const [t, v] of s.values) {
      if (v == null) {
        previous = null;
        continue;
      }
      // A gap longer than three intervals (no samples) breaks the line.
      const jump = previous === null || t - previous > 3 * state.intervalMs;
      d += (jump ? "M" : "L") + x(t).toFixed(1) + "," + y(v).toFixed(1);
      previous = t;
    }
    const path = el("path", { d, class: "series", stroke: s.color }, svg);
    path.dataset.route = s.name;
    path.dataset.points = String(s.values.filter((p) => p[1] != null).length);
    const last = s.values[s.values.length - 1];
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = s.color;
    const value = document.createElement("b");
    value.textContent = last && last[1] != null ? format(last[1]) : "–";
    item.append(swatch, s.name + " ", value);
    legend.appendChild(item);
  }
}

// Per-route series of `value(routePoint, point)` over the timeline; routes absent from a
// sample get `absent` (0 for rates, null for latencies).
function routeSeries(value, absent) {
  const names = new Map();
  for (const p of state.points) {
    for (const r of p.routes) {
      if (!showOwn() && isOwn(r.route)) continue;
      names.set(routeName(r.method, r.route), true);
    }
  }
  return [...names.keys()].sort().map((name) => ({
    name,
    color: colorOf(name),
    values: state.points.map((p) => {
      const r = p.routes.find((r) => routeName(r.method, r.route) === name);
      return [p.t, r ? value(r, p) : absent];
    }),
  }));
}

function perSecond(count, p) {
  return p.ms > 0 ? (count * 1000) / p.ms : 0;
}

function simpleSeries(name, color, value) {
  return {
    name,
    color,
    values: state.points.map((p) => [p.t, value(p)]),
  };
}

function taskSeries(field, label) {
  const kinds = new Set();
  for (const p of state.points) for (const k of p.tasks) kinds.add(k.kind);
  return [...kinds].sort().map((kind) => ({
    name: kind + " " + label,
    color: colorOf("task " + kind + " " + label),
    values: state.points.map((p) => {
      const k = p.tasks.find((k) => k.kind === kind);
      return [p.t, k ? k[field] : null];
    }),
  }));
}

function drawCharts() {
  const pct = document.getElementById("percentile").value;
  drawChart("chart-rate", routeSeries((r, p) => perSecond(r.requests, p), 0), {});
  drawChart("chart-errors", routeSeries((r, p) => perSecond(r.by_class[4], p), 0), {});
  drawChart("chart-latency", routeSeries((r) => r[pct], null), { log: true, format: fmtMicros });
  const classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
  const statusColors = ["#64748b", "#16a34a", "#0891b2", "#d97706", "#dc2626"];
  drawChart(
    "chart-status",
    classes
      .map((name, i) =>
        simpleSeries(name, statusColors[i], (p) =>
          perSecond(
            p.routes
              .filter((r) => showOwn() || !isOwn(r.route))
              .reduce((sum, r) => sum + r.by_class[i], 0),
            p,
          ),
        ),
      )
      .filter((s) => s.values.some((v) => v[1] > 0)),
    {},
  );
  drawChart(
    "chart-inflight",
    [
      simpleSeries("in flight", "#2563eb", (p) => p.in_flight),
      simpleSeries("refused/s", "#dc2626", (p) => perSecond(p.refused, p)),
      simpleSeries("connections cut/s", "#d97706", (p) => perSecond(p.cut, p)),
    ],
    {},
  );
  drawChart(
    "chart-store",
    [
      simpleSeries("calls/s", "#16a34a", (p) => perSecond(p.store_calls, p)),
      simpleSeries("failures/s", "#dc2626", (p) => perSecond(p.store_errors, p)),
    ],
    {},
  );
  drawChart("chart-queue", [simpleSeries("depth", "#7c3aed", (p) => p.queue_depth)], {});
  drawChart(
    "chart-tasks",
    [...taskSeries("wait_p99_ms", "wait p99"), ...taskSeries("lead_p99_ms", "lead p99")],
    { log: true, format: (v) => fmtNumber(v) + " ms" },
  );
  drawChart("chart-cpu", [simpleSeries("CPU %", "#d97706", (p) => p.cpu_percent)], {
    format: (v) => fmtNumber(v) + "%",
  });
  drawChart(
    "chart-memory",
    [simpleSeries("RSS", "#0891b2", (p) => (p.rss_bytes == null ? null : p.rss_bytes / 1048576))],
    { format: (v) => fmtNumber(v) + " MB" },
  );
  drawChart(
    "chart-disk",
    [
      simpleSeries("room", "#16a34a", (p) => (p.disk_room_bytes == null ? null : p.disk_room_bytes / 1048576)),
      simpleSeries("held", "#7c3aed", (p) => p.disk_held_bytes / 1048576),
    ],
    { format: (v) => fmtNumber(v) + " MB" },
  );
}

// ---- route table ------------------------------------------------------------------------

function tableRows() {
  const recent = state.points.slice(-10);
  const seconds = recent.reduce((s, p) => s + p.ms, 0) / 1000;
  return state.table
    .filter((row) => showOwn() || !isOwn(row.route))
    .map((row) => {
      const name = routeName(row.method, row.route);
      let requests = 0, errors = 0, latest = null;
      for (const p of recent) {
        const r = p.routes.find((r) => r.method === row.method && r.route === row.route);
        if (r) {
          requests += r.requests;
          errors += r.by_class[4];
          latest = r;
        }
      }
      return {
        name,
        rate: seconds > 0 ? requests / seconds : 0,
        errors: seconds > 0 ? errors / seconds : 0,
        p50: latest ? latest.p50 : null,
        p99: latest ? latest.p99 : null,
        max: latest ? latest.max : null,
        count: row.count,
        p99_total: row.p99_us,
      };
    });
}

function drawTable() {
  const rows = tableRows();
  const { key, asc } = state.sort;
  rows.sort((a, b) => {
    const va = a[key], vb = b[key];
    const cmp = typeof va === "string" ? va.localeCompare(vb) : (va ?? -1) - (vb ?? -1);
    return asc ? cmp : -cmp;
  });
  const body = document.querySelector("#routes tbody");
  body.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement("tr");
    tr.dataset.route = row.name;
    const cells = [
      [row.name, ""],
      [fmtNumber(row.rate, 1), "num"],
      [fmtNumber(row.errors, 1), row.errors > 0 ? "num bad" : "num"],
      [fmtMicros(row.p50), "num"],
      [fmtMicros(row.p99), "num"],
      [fmtMicros(row.max), "num"],
      [String(row.count), "num"],
      [fmtMicros(row.p99_total), "num"],
    ];
    for (const [text, cls] of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      td.className = cls;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  for (const th of document.querySelectorAll("#routes th")) {
    th.classList.toggle("sorted", th.dataset.key === key);
    th.classList.toggle("asc", th.dataset.key === key && asc);
  }
  const select = document.querySelector('#log-filters select[name="route"]');
  const known = new Set([...select.options].map((o) => o.value));
  for (const row of state.table) {
    if (!known.has(row.route)) {
      const option = document.createElement("option");
      option.value = row.route;
      option.textContent = row.route;
      select.appendChild(option);
      known.add(row.route);
    }
  }
}

// ---- polling ----------------------------------------------------------------------------

function setConnection(ok, text) {
  const pill = document.getElementById("connection");
  pill.textContent = text;
  pill.className = "pill " + (ok ? "live" : "down");
}

function render() {
  drawAlerts();
  const traffic = state.table.some((row) => !isOwn(row.route));
  document.getElementById("empty").hidden = traffic;
  drawCharts();
  drawTable();
  const minutes = (state.capacity * state.intervalMs) / 60000;
  document.getElementById("meta").textContent =
    `a sample every ${state.intervalMs / 1000} s, the last ${fmtNumber(minutes, minutes < 10 ? 1 : 0)} minutes`;
}

async function pollData() {
  try {
    const url = state.since == null ? "/dashboard/data" : `/dashboard/data?since=${state.since}`;
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(`/dashboard/data answered ${response.status}`);
    const data = await response.json();
    if (state.since != null && data.last < state.since) {
      // The service restarted: start over.
      state.since = null;
      state.points = [];
      return pollData();
    }
    if (data.route_table) {
      state.families = new Map(data.route_table.map((r) => [r.route, r.family]));
    }
    state.capacity = data.capacity;
    state.intervalMs = data.interval_ms;
    state.points.push(...data.points);
    if (state.points.length > state.capacity) {
      state.points.splice(0, state.points.length - state.capacity);
    }
    state.since = data.last;
    state.table = data.routes;
    state.faults = data.faults || [];
    state.alerts = data.alerts || [];
    if (data.prometheus !== state.prometheus) {
      state.prometheus = data.prometheus || null;
      if (state.prometheus) pollAlerts();
    }
    setConnection(true, "live");
    render();
  } catch (err) {
    setConnection(false, "cannot reach glassbox, retrying");
    console.warn(err);
  }
  setTimeout(pollData, state.intervalMs);
}

function logQuery() {
  const form = document.getElementById("log-filters");
  const params = new URLSearchParams();
  for (const name of ["level", "route", "status"]) {
    const value = form.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

async function pollLogs() {
  const form = document.getElementById("log-filters");
  const status = form.elements.status;
  if (status.value && !status.checkValidity()) {
    setTimeout(pollLogs, LOG_POLL_MS);
    return;
  }
  const params = logQuery();
  const key = params.toString();
  if (key !== state.logFilterKey) {
    state.logFilterKey = key;
    state.logsSince = null;
    state.logs = [];
  }
  params.set("limit", "200");
  if (state.logsSince != null) params.set("since", String(state.logsSince));
  try {
    const response = await fetch("/logs?" + params.toString(), { cache: "no-store" });
    if (!response.ok) throw new Error(`/logs answered ${response.status}`);
    const data = await response.json();
    if (state.logsSince != null && data.last < state.logsSince) {
      state.logsSince = null;
      state.logs = [];
    } else {
      state.logs = data.lines.concat(state.logs).slice(0, 200);
      state.logsSince = data.last;
    }
    drawLogs();
  } catch (err) {
    console.warn(err);
  }
  setTimeout(pollLogs, LOG_POLL_MS);
}

function drawLogs() {
  const body = document.querySelector("#logs tbody");
  body.replaceChildren(...state.logs.map(logRow));
}

// The columns of both log tables: heading, the heading's class, and a line's cell text and
// class.
const LOG_COLUMNS = [
  ["time", "", (line) => [line.timestamp ? line.timestamp.slice(11, 23) : "", ""]],
  ["level", "", (line) => [line.level || "", "level-" + (line.level || "")]],
  ["status", "", (line) => [line.status != null ? String(line.status) : "", ""]],
  ["what", "", (line) => [logWhat(line), "what"]],
  ["ms", "num", (line) => [line.latency_ms != null ? line.latency_ms.toFixed(3) : "", "num"]],
  ["request id", "", (line) => [line.request_id || "", "id"]],
];

// What a log line says: a request's method and path (and its route), else the message.
function logWhat(line) {
  return line.message === "request"
    ? `${line.method} ${line.path}` + (line.route && line.route !== line.path ? `  (${line.route})` : "")
    : line.message + (line.kind ? ` ${line.kind} ${line.outcome || ""}` : "") + (line.error ? `: ${line.error}` : "");
}

// The heading row of a log table.
function logHeadings(table) {
  const tr = document.createElement("tr");
  for (const [heading, cls] of LOG_COLUMNS) {
    const th = document.createElement("th");
    th.textContent = heading;
    if (cls) th.className = cls;
    tr.appendChild(th);
  }
  table.querySelector("thead").replaceChildren(tr);
}

// One log line as a table row.
function logRow({ seq, line }) {
  const tr = document.createElement("tr");
  tr.dataset.seq = String(seq);
  for (const [, , cell] of LOG_COLUMNS) {
    const [text, cls] = cell(line);
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  return tr;
}

// A click on the latency chart: the sample nearest the click, its slowest request (of the
// routes shown) and that request's log lines from /logs?request_id=.
async function showSlowest(event) {
  const fig = document.getElementById("chart-latency");
  const svg = fig.querySelector("svg");
  if (!svg || !svg.contains(event.target) || state.points.length === 0) return;
  const { W, L, R } = CHART;
  const box = svg.getBoundingClientRect();
  const sx = ((event.clientX - box.left) / box.width) * W;
  const t = Number(fig.dataset.t0) + ((sx - L) / (W - L - R)) * Number(fig.dataset.span);
  const nearest = state.points.reduce((a, b) => (Math.abs(b.t - t) < Math.abs(a.t - t) ? b : a));
  const routes = nearest.routes.filter(
    (r) => r.slowest_request_id && (showOwn() || !isOwn(r.route)),
  );
  const panel = document.getElementById("slowest");
  const summary = panel.querySelector(".summary");
  const body = panel.querySelector("tbody");
  panel.hidden = false;
  body.replaceChildren();
  if (routes.length === 0) {
    panel.dataset.requestId = "";
    summary.textContent = `No request ended in the interval before ${fmtTime(nearest.t)}.`;
    return;
  }
  const slowest = routes.reduce((a, b) => (b.max > a.max ? b : a));
  const id = slowest.slowest_request_id;
  panel.dataset.requestId = id;
  summary.textContent =
    `The interval before ${fmtTime(nearest.t)}: slowest was ${slowest.method} ${slowest.route}, ` +
    `${fmtMicros(slowest.max)}, request id ${id}.`;
  try {
    const params = new URLSearchParams({ request_id: id, limit: "50" });
    const response = await fetch("/logs?" + params.toString(), { cache: "no-store" });
    if (!response.ok) throw new Error(`/logs answered ${response.status}`);
    const data = await response.json();
    if (panel.dataset.requestId !== id) return;
    body.replaceChildren(...data.lines.map(logRow));
    if (data.lines.length === 0) {
      summary.textContent += ` Its lines are no longer among the ${data.capacity} kept here: ` +
        `search the log file for ${id}.`;
    }
  } catch (err) {
    console.warn(err);
  }
}

// Pending and firing alerts: Prometheus' own when it answers, else glassbox's in-process
// evaluation of the demo burn-rate rule.
async function pollAlerts() {
  if (!state.prometheus) return;
  try {
    const response = await fetch(`${state.prometheus}/api/v1/alerts`, { cache: "no-store" });
    if (!response.ok) throw new Error(`Prometheus answered ${response.status}`);
    const body = await response.json();
    state.promAlerts = body.data.alerts.map((a) => ({
      name: a.labels.alertname,
      state: a.state,
      active_ms: Date.parse(a.activeAt),
      value: Number(a.value),
    }));
  } catch (err) {
    state.promAlerts = null;
  }
  drawAlerts();
  setTimeout(pollAlerts, ALERT_POLL_MS);
}

function drawAlerts() {
  const fromPrometheus = state.promAlerts !== null;
  const alerts = fromPrometheus ? state.promAlerts : state.alerts;
  const source = document.getElementById("alerts-source");
  source.textContent = fromPrometheus
    ? `alerts from Prometheus (${state.prometheus})`
    : "alerts evaluated in glassbox (the demo burn-rate rule)";
  source.dataset.source = fromPrometheus ? "prometheus" : "in-process";
  const list = document.getElementById("alerts-list");
  list.replaceChildren();
  if (alerts.length === 0) {
    list.textContent = "none pending or firing";
    return;
  }
  for (const a of alerts) {
    const item = document.createElement("span");
    item.className = `alert ${a.state}`;
    item.dataset.alert = a.name;
    item.dataset.state = a.state;
    item.textContent = `${a.name} ${a.state} since ${fmtTime(a.active_ms)}`;
    list.appendChild(item);
  }
}

function init() {
  for (const table of document.querySelectorAll("#logs, #slowest-logs")) logHeadings(table);
  for (const th of document.querySelectorAll("#routes th")) {
    th.addEventListener("click", () => {
      const key = th.dataset.key;
      state.sort = { key, asc: state.sort.key === key ? !state.sort.asc : key === "name" };
      drawTable();
    });
  }
  document.getElementById("percentile").addEventListener("change", drawCharts);
  document.getElementById("chart-latency").addEventListener("click", showSlowest);
  document.getElementById("own").addEventListener("change", render);
  document.getElementById("log-filters").addEventListener("submit", (e) => e.preventDefault());
  for (const input of document.querySelectorAll("#log-filters select, #log-filters input")) {
    input.addEventListener("change", () => {
      state.logs = [];
      drawLogs();
    });
  }
  pollData();
  pollLogs();
}

document.addEventListener("DOMContentLoaded", init);
