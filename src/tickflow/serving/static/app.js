// The serving page: search, select, and watch the selection's filled values, their staleness and a
// price chart live. Data: /api/instruments (search), /api/stream (server-sent events: a snapshot, then
// only what changed), /api/history/{id} (seeds the charts), /api/health (the health strip under the header:
// the pipeline's figures and firing alerts, which the server reads from Prometheus). uPlot comes from npm
// (static/vendor/).

const FIELD_ORDER = ["bid_price", "bid_size", "ask_price", "ask_size", "last_price", "close_price",
  "reference_price", "trade_price", "trade_size", "trade_side", "trade_id", "cancelled_trade_id"];
const TRADE_FIELDS = ["trade_id", "trade_price", "trade_size", "trade_side"];
// Derived from the trade: md:latest keeps their last non-null value, the cancelled trade's once it is cleared.
const TRADE_DERIVED = ["trade_notional", "trade_notional_usd"];
const DERIVED_ORDER = ["mid", "spread", "spread_bps", "mid_usd", "last_price_usd", "trade_notional",
  "trade_notional_usd", "fx_rate_usd"];
const REFERENCE_ORDER = ["symbol", "instrument_name", "exchange", "currency", "asset_class", "sector",
  "tick_size", "lot_size", "reference_version", "enriched"];
const CHART_WINDOW_MS = 10 * 60 * 1000;
const MAX_POINTS = 5000;
const HEALTH_POLL_MS = 5000;

const $ = (id) => document.getElementById(id);
const state = {
  selected: [],            // instrument ids, in the order chosen
  rows: new Map(),         // id -> {fields, reference, derived, meta}
  missing: new Set(),      // selected, known, but nothing stored yet
  points: new Map(),       // id -> {xs: [s], ys: [price]}
  charts: new Map(),       // id -> uPlot
  offsetMs: 0,             // server clock - this clock
  source: null,
  changed: new Set(),      // "id|section|name" cells to flash at the next render
};
// uPlot's minified build, loaded by a classic script just before this module (static/vendor/).
const uPlot = window.uPlot ?? null;
if (!uPlot) showProblem("The chart library is missing (static/vendor): run `make setup` to fetch it from npm.");

// ---- formatting ---------------------------------------------------------------------------------

function formatValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return value.toLocaleString("en-US");
    return Math.abs(value) >= 1000 ? value.toFixed(2) : String(Number(value.toPrecision(8)));
  }
  return String(value);
}

function formatAge(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min`;
  if (ms < 86_400_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${Math.floor(ms / 86_400_000)} d`;
}

// hh:mm:ss.mmm in UTC, the clock of every event time.
const formatTime = (ms) => `${new Date(ms).toISOString().slice(11, 23)} UTC`;

const serverNow = () => Date.now() + state.offsetMs;
const ageClass = (ms) => (ms < 2000 ? "fresh" : ms < 60_000 ? "recent" : "stale");

// ---- search and selection -----------------------------------------------------------------------

let searchTimer = null;
$("search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(runSearch, 120);
});

async function runSearch() {
  const q = $("search").value;
  const response = await fetch(`/api/instruments?limit=25&q=${encodeURIComponent(q)}`);
  const body = await response.json();
  if (!response.ok) return showProblem(body.error);
  $("catalogue").textContent = `catalogue: ${body.catalogue}`;
  const list = $("results");
  list.replaceChildren(...body.instruments.map(resultItem));
}

function resultItem(instrument) {
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.instrument = instrument.instrument_id;
  button.setAttribute("aria-pressed", String(state.selected.includes(instrument.instrument_id)));
  const sym = span("sym", instrument.symbol || instrument.instrument_id);
  const id = span("id", ` ${instrument.instrument_id}`);
  const more = span("more", [instrument.name, instrument.sector, instrument.in_reference ? null : "not in reference data"]
    .filter(Boolean).join(" · "));
  button.append(sym, id, document.createElement("br"), more);
  button.addEventListener("click", () => toggle(instrument.instrument_id));
  const item = document.createElement("li");
  item.append(button);
  return item;
}

function span(cls, text) {
  const element = document.createElement("span");
  element.className = cls;
  element.textContent = text;
  return element;
}

function toggle(id) {
  const at = state.selected.indexOf(id);
  if (at >= 0) {
    state.selected.splice(at, 1);
    state.rows.delete(id);
    state.points.delete(id);
    state.charts.get(id)?.destroy();
    state.charts.delete(id);
  } else {
    state.selected.push(id);
    seedChart(id);
  }
  for (const button of document.querySelectorAll("#results button")) {
    button.setAttribute("aria-pressed", String(state.selected.includes(button.dataset.instrument)));
  }
  history.replaceState(null, "", state.selected.length ? `#ids=${state.selected.join(",")}` : "#");
  connect();
  render();
}

// ---- the live feed ------------------------------------------------------------------------------

let source = null;

function connect() {
  source?.close();
  source = null;
  if (!state.selected.length) return setStatus("not connected", "");
  const feed = new EventSource(`/api/stream?ids=${encodeURIComponent(state.selected.join(","))}`);
  source = feed;
  feed.addEventListener("snapshot", (event) => {
    const body = JSON.parse(event.data);
    state.offsetMs = body.now - Date.now();
    state.missing = new Set(body.missing);
    for (const row of body.instruments) {
      state.rows.set(row.instrument_id, row);
      state.missing.delete(row.instrument_id);
    }
    setStatus(`live · ${state.selected.length} selected`, "live");
    render();
  });
  feed.addEventListener("update", (event) => {
    const body = JSON.parse(event.data);
    state.offsetMs = body.now - Date.now();
    for (const change of body.instruments) merge(change);
    render();
  });
  feed.addEventListener("heartbeat", (event) => {
    state.offsetMs = JSON.parse(event.data).now - Date.now();
    setStatus(`live · ${state.selected.length} selected`, "live");
  });
  feed.addEventListener("problem", (event) => setStatus(JSON.parse(event.data).error, "down"));
  feed.onerror = async () => {
    if (feed !== source) return;
    setStatus("reconnecting…", "down");
    if (feed.readyState === EventSource.CLOSED) {
      // A refused request (400/404) closes the feed for good: show why.
      const response = await fetch(`/api/latest?ids=${encodeURIComponent(state.selected.join(","))}`);
      if (!response.ok) showProblem((await response.json()).error);
    }
  };
}

function merge(change) {
  const id = change.instrument_id;
  const row = state.rows.get(id) || { instrument_id: id, fields: {}, reference: {}, derived: {}, meta: {} };
  for (const section of ["fields", "reference", "derived", "meta"]) {
    for (const [name, value] of Object.entries(change[section] || {})) {
      row[section][name] = value;
      state.changed.add(`${id}|${section}|${name}`);
    }
  }
  state.rows.set(id, row);
  state.missing.delete(id);
  const price = change.derived?.mid ?? change.fields?.last_price?.value;
  if (price !== undefined && price !== null) {
    const at = change.meta?.event_time ?? change.fields?.last_price?.as_of ?? serverNow();
    addPoint(id, at / 1000, price);
  }
}

function setStatus(text, cls) {
  $("status").textContent = text;
  $("status").className = `status ${cls}`;
}

function showProblem(message) {
  $("problem").textContent = message;
  $("problem").hidden = !message;
}

// ---- the table (fields as rows, selected instruments as columns) --------------------------------

// A filled field whose value is null but whose as-of is set was cleared: "no value as of then".
const isCleared = (entry) => entry !== undefined && entry.value === null && entry.as_of !== null;

// The cancel that cleared the instrument's trade, or null while a trade stands (or none was ever seen).
// The id is the cancel's when it cleared the trade (same as-of); a later cancel naming another trade does
// not clear anything, and the id of the trade it cleared is then no longer known.
function tradeCancel(row) {
  const trade = row?.fields?.trade_id;
  if (!isCleared(trade)) return null;
  const cancel = row.fields.cancelled_trade_id;
  const id = cancel && cancel.value !== null && cancel.as_of === trade.as_of ? cancel.value : null;
  return { id, at: trade.as_of };
}

function cancelText(cancel) {
  return `${cancel.id ?? "last trade"} cancelled at ${formatTime(cancel.at)}`;
}

function ordered(section, preferred) {
  const names = new Set();
  for (const id of state.selected) Object.keys(state.rows.get(id)?.[section] || {}).forEach((n) => names.add(n));
  return [...preferred.filter((n) => names.has(n)), ...[...names].filter((n) => !preferred.includes(n)).sort()];
}

function render() {
  const table = $("values");
  $("empty").hidden = state.selected.length > 0;
  table.hidden = state.selected.length === 0;
  const head = document.createElement("tr");
  head.append(cell("th", "field"));
  for (const id of state.selected) {
    const th = cell("th", state.rows.get(id)?.reference?.symbol || id);
    th.scope = "col";
    th.dataset.instrument = id;
    th.append(span("id", id));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.title = `stop watching ${id}`;
    remove.textContent = "×";
    remove.addEventListener("click", () => toggle(id));
    th.append(remove);
    head.append(th);
  }
  table.tHead.replaceChildren(head);

  const body = [];
  const sectionRow = (title) => {
    const tr = document.createElement("tr");
    tr.className = "section";
    const td = cell("td", title);
    td.colSpan = state.selected.length + 1;
    tr.append(td);
    body.push(tr);
  };
  sectionRow("filled values · staleness");
  for (const name of ordered("fields", FIELD_ORDER)) {
    const tr = document.createElement("tr");
    tr.append(cell("td", name));
    for (const id of state.selected) {
      const entry = state.rows.get(id)?.fields?.[name];
      const td = isCleared(entry)
        ? clearedCell(id, "fields", name, TRADE_FIELDS.includes(name) ? tradeCancel(state.rows.get(id)) : null)
        : valueCell(id, "fields", name, entry?.value);
      if (entry) {
        const age = span("age", "");
        age.dataset.asOf = entry.as_of;
        td.append(age);
      } else if (state.missing.has(id)) {
        td.textContent = "no data yet";
      }
      tr.append(td);
    }
    body.push(tr);
  }
  for (const [section, title, order] of [["derived", "derived", DERIVED_ORDER], ["reference", "reference", REFERENCE_ORDER]]) {
    const names = ordered(section, order);
    if (!names.length) continue;
    sectionRow(title);
    for (const name of names) {
      const tr = document.createElement("tr");
      tr.append(cell("td", name));
      for (const id of state.selected) {
        const row = state.rows.get(id);
        const cancel = section === "derived" && TRADE_DERIVED.includes(name) ? tradeCancel(row) : null;
        tr.append(cancel ? clearedCell(id, section, name, cancel) : valueCell(id, section, name, row?.[section]?.[name]));
      }
      body.push(tr);
    }
  }
  table.tBodies[0].replaceChildren(...body);
  state.changed.clear();
  tickAges();
  renderCharts();
}

function cell(tag, text) {
  const element = document.createElement(tag);
  element.textContent = text;
  return element;
}

function valueCell(id, section, name, value) {
  const td = document.createElement("td");
  td.dataset.instrument = id;
  td.dataset.field = name;
  td.append(span("v", formatValue(value)));
  if (state.changed.has(`${id}|${section}|${name}`)) td.classList.add("changed");
  return td;
}

// A cleared value: never the value it replaced. The trade_id row says which trade was cancelled and when;
// the other trade fields (and what is derived from the trade) a dash, the cancel in their tooltip.
function clearedCell(id, section, name, cancel) {
  const td = document.createElement("td");
  td.dataset.instrument = id;
  td.dataset.field = name;
  td.classList.add("cleared");
  const text = cancel && name === "trade_id" ? cancelText(cancel) : "—";
  td.append(span("v", text));
  td.title = cancel ? cancelText(cancel) : "cleared: no value since then";
  if (state.changed.has(`${id}|${section}|${name}`)) td.classList.add("changed");
  return td;
}

function tickAges() {
  const now = serverNow();
  for (const age of document.querySelectorAll("#values .age")) {
    const ms = Math.max(0, now - Number(age.dataset.asOf));
    age.textContent = formatAge(ms);
    age.className = `age ${ageClass(ms)}`;
  }
}
setInterval(tickAges, 200);

// ---- charts (one per selected instrument: mid, else last price) ---------------------------------

async function seedChart(id) {
  state.points.set(id, { xs: [], ys: [] });
  const start = serverNow() - CHART_WINDOW_MS;
  const response = await fetch(`/api/history/${encodeURIComponent(id)}?start=${Math.round(start)}&limit=${MAX_POINTS}`);
  if (!response.ok || !state.points.has(id)) return;
  const { records } = await response.json();
  for (const record of records.reverse()) {
    const price = record.mid ?? record.last_price;
    if (price !== null && price !== undefined) addPoint(id, record.event_time / 1000, price);
  }
  renderCharts();
}

function addPoint(id, x, y) {
  const series = state.points.get(id);
  if (!series) return;
  let at = series.xs.length;
  while (at > 0 && series.xs[at - 1] > x) at -= 1;
  if (at > 0 && series.xs[at - 1] === x) series.ys[at - 1] = y;
  else {
    series.xs.splice(at, 0, x);
    series.ys.splice(at, 0, y);
  }
  if (series.xs.length > MAX_POINTS) {
    series.xs.splice(0, series.xs.length - MAX_POINTS);
    series.ys.splice(0, series.ys.length - MAX_POINTS);
  }
}

function renderCharts() {
  if (!uPlot) return;
  const box = $("charts");
  for (const id of state.selected) {
    const series = state.points.get(id);
    if (!series) continue;
    let chart = state.charts.get(id);
    if (!chart) {
      const figure = document.createElement("figure");
      figure.dataset.instrument = id;
      figure.append(document.createElement("figcaption"));
      box.append(figure);
      chart = new uPlot({
        width: 440, height: 200, legend: { show: false },
        series: [{}, { label: id, stroke: "#1f6feb", width: 1.5, points: { show: series.xs.length < 50 } }],
        scales: { x: { time: true } },
      }, [series.xs, series.ys], figure);
      state.charts.set(id, chart);
    } else {
      chart.setData([series.xs, series.ys]);
    }
    const caption = box.querySelector(`figure[data-instrument="${CSS.escape(id)}"] figcaption`);
    caption.textContent = `${state.rows.get(id)?.reference?.symbol || id} · mid`;
  }
  for (const figure of [...box.children]) {
    if (!state.selected.includes(figure.dataset.instrument)) figure.remove();
  }
}

// ---- the health strip (source -> md.events -> stream -> md.enriched -> HBase, dead letters, alerts) ----

function formatFigure(value, unit) {
  if (value === null || value === undefined) return "–";
  if (unit === "seconds") return formatAge(value * 1000);
  if (unit === "age") return `${formatAge(value * 1000)} ago`;
  const digits = Math.abs(value) < 10 && !Number.isInteger(value) ? 1 : 0;
  const number = value.toLocaleString("en-US", { maximumFractionDigits: digits });
  if (unit === "rate") return `${number}/s`;
  if (unit === "per-minute") return `${number}/min`;
  return number;
}

function showFigures(figures) {
  for (const element of document.querySelectorAll("#health [data-figure]")) {
    const value = figures[element.dataset.figure] ?? null;
    element.textContent = formatFigure(value, element.dataset.unit);
    element.dataset.value = value === null ? "" : String(value);
    element.title = value === null ? "Prometheus has no value for this now" : "";
  }
}

function showAlerts(alerts) {
  $("health-alerts").replaceChildren(...alerts.map((alert) => {
    const item = document.createElement("li");
    item.dataset.alert = alert.name;
    item.className = alert.severity || "unknown";
    item.append(span("name", alert.name), span("summary", ` ${alert.summary}`));
    if (alert.since !== null) item.append(span("since", ` since ${formatTime(alert.since)}`));
    return item;
  }));
}

function showHealth(body) {
  if (body.prometheus !== "up") {
    // The server's sentence names Prometheus's address; the strip says what is wrong, the tooltip the rest.
    const why = body.error.replace(/^Prometheus at \S+ did not answer: /, "");
    showNoHealth("down", `Prometheus is not answering: ${why}`);
    $("health-status").title = body.error;
    return;
  }
  $("health").dataset.prometheus = "up";
  showFigures(body.figures);
  showAlerts(body.alerts);
  const firing = body.alerts.length;
  $("health-status").textContent = firing ? `${firing} alert${firing > 1 ? "s" : ""} firing` : "no alert firing";
  $("health-status").className = `status ${firing ? "down" : "live"}`;
  $("health-status").title = "";
}

// No figures rather than old ones that look current; the instruments go on updating meanwhile.
function showNoHealth(prometheus, message) {
  $("health").dataset.prometheus = prometheus;
  showFigures({});
  showAlerts([]);
  $("health-status").textContent = message;
  $("health-status").className = "status down";
  $("health-status").title = "";
}

async function pollHealth() {
  try {
    const response = await fetch("/api/health");
    const body = await response.json();
    if (response.ok) showHealth(body);
    else showNoHealth("unknown", body.error);
  } catch (error) {
    showNoHealth("unknown", `The serving app did not answer the health strip's request (${error.message}).`);
  } finally {
    setTimeout(pollHealth, HEALTH_POLL_MS);
  }
}

// ---- start --------------------------------------------------------------------------------------

function start() {
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get("ids");
  if (fromUrl) {
    for (const id of fromUrl.split(",").filter(Boolean)) {
      state.selected.push(id);
      seedChart(id);
    }
    connect();
    render();
  }
  runSearch();
  pollHealth();
}

start();
