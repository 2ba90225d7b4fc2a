// unigw dashboard: polls GET /providers every POLL_MS and keeps the table, the summary, the
// charts, the requests panel and the chat/log choices in step with it (the charts start from
// the request log's last minutes); sends the control requests the buttons and the strategy
// selector ask for. Plain ES modules, no build step, nothing from the internet.

import * as api from "./api.js";
import { Charts, History, WINDOW_S, medianLatency } from "./charts.js";
import { Chat } from "./chat.js";
import { clock, ms, percent, rate, setText } from "./format.js";
import { Logs } from "./logs.js";
import { Requests } from "./requests.js";
import { BUSY_TEXT, DONE_LABEL, ProviderTable, setAvailable, unavailable } from "./table.js";

const POLL_MS = 1500;
const POLL_TIMEOUT_MS = 5000;
const HIDDEN_POLL_MS = 5000;
const RATE_WINDOW_S = 10;
const ERROR_WINDOW_S = 60;

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

const history = new History();
const charts = new Charts($("charts"));
const logs = new Logs($("logs"));
const chat = new Chat($("chat"), { onAnswered: (kind, text) => announce(text) });
const table = new ProviderTable($("providers"), { onAction, onGroupAction: controlGroup });
const requests = new Requests($("requests-panel"));
const strategySelect = $("strategy-select");

let epoch = 0; // grows when a control answer is shown, so older polls do not undo it
let modelsKey = null;
let strategyPending = false;
let lastRows = [];
let seeded = false;

/** Say something to screen readers (and keep it visible in the toolbar). */
function announce(text) {
  const region = $("announce");
  region.textContent = "";
  // A fresh text node each time makes repeated identical messages announced again.
  window.setTimeout(() => { region.textContent = text; }, 30);
}

function toolbarOutcome(kind, text) {
  const node = $("toolbar-outcome");
  node.textContent = text;
  node.dataset.kind = kind;
  announce(text);
}

// -- polling --------------------------------------------------------------------------------

async function poll() {
  const started = epoch;
  try {
    const data = await api.getProviders({ signal: AbortSignal.timeout(POLL_TIMEOUT_MS) });
    if (started === epoch) show(data);
    connection(true);
  } catch (err) {
    connection(false, err.message);
  } finally {
    window.setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }
}

function connection(ok, reason) {
  const node = $("connection");
  node.dataset.ok = ok ? "true" : "false";
  setText(node, ok ? `live · ${clock(new Date())}` : `gateway unreachable (${reason}) · retrying`);
}

function show(data) {
  const rows = Array.isArray(data.providers) ? data.providers : [];
  lastRows = rows;
  table.update(rows);
  history.add(Date.now(), rows);
  summary(rows, data);
  charts.draw(history, rows.map((r) => r.name));
  chat.setProviders(rows);
  logs.setProviders(rows.map((r) => r.name));
  requests.setProviders(rows.map((r) => r.name));
  requests.refresh();
  if (!seeded) seedCharts();
  if (data.strategy && !strategyPending && document.activeElement !== strategySelect) {
    setStrategy(data.strategy);
  }
  const key = rows.map((r) => `${r.name}:${(r.models || []).join(",")}`).join(";");
  if (key !== modelsKey) {
    modelsKey = key;
    api.getModels().then((m) => chat.setModels(m), () => chat.setModels(null));
  }
}

/** Once, after the first poll: the charts' last minutes from the request log. */
async function seedCharts() {
  seeded = true;
  try {
    const since = Date.now() / 1000 - WINDOW_S;
    const data = await api.getRequests({ n: 5000, since });
    const placed = history.seed((data && data.requests) || []);
    $("charts").dataset.seeded = String(placed);
    charts.draw(history, lastRows.map((r) => r.name));
  } catch {
    // no history then: the charts start from this page's polls
  }
}

function summary(rows, data) {
  const s = data.summary || {};
  const ready = s.ready ?? rows.filter((r) => r.state === "ready").length;
  const total = s.total ?? rows.length;
  setText($("summary-ready"), `${ready}/${total} ready`);
  $("summary-ready").dataset.all = String(ready === total && total > 0);
  const { rps } = history.totals(RATE_WINDOW_S);
  const { errorRate } = history.totals(ERROR_WINDOW_S);
  setText($("summary-rps"), rate(rps));
  setText($("summary-errors"), percent(errorRate));
  setText($("summary-latency"), ms(medianLatency(rows)));
  setText($("summary-strategy"), data.strategy || strategySelect.value || "");
}

// -- provider control -----------------------------------------------------------------------

function onAction(name, action) {
  if (action === "logs") {
    logs.open(name);
    return;
  }
  control(name, action);
}

/** One control request for a provider's row or a group line (``name``): pending and busy
 * while it runs; ``settle(answer, took)`` says how it went; a request that failed says so. */
async function controlling(name, action, settle) {
  table.setPending(name, action);
  table.setOutcome(name, "busy", BUSY_TEXT[action]);
  const started = performance.now();
  try {
    const answer = await api.control(action, name);
    epoch += 1;
    settle(answer, () => ms(performance.now() - started));
  } catch (err) {
    table.setOutcome(name, "error", `${action} failed: ${err.message}`);
    announce(`${name}: ${action} failed: ${err.message}`);
  } finally {
    table.setPending(name, null);
  }
}

function control(name, action) {
  return controlling(name, action, (row, took) => {
    if (row && row.name) table.merge(row);
    const state = row && row.state;
    if (state === "failed" && action !== "stop") {
      const why = (row.last_error || "it failed").split("\n")[0]; // in full: the detail row
      table.setOutcome(name, "error", `${action} failed: ${why}`);
      announce(`${name}: ${action} failed: ${why}`);
      return;
    }
    const now = state && state !== DONE_LABEL[action] ? `: ${state}` : "";
    table.setOutcome(name, "ok", `${DONE_LABEL[action]}${now} (${took()})`);
    announce(`${name} ${DONE_LABEL[action]}${now}`);
  });
}

/** A group line's button: the action on every instance of the provider, in one request. */
function controlGroup(group, action) {
  return controlling(group, action, (data, took) => {
    const rows = (data && data.providers) || [];
    rows.forEach((r) => r && r.name && table.merge(r));
    const failed = action === "stop" ? [] : rows.filter((r) => r.state === "failed");
    if (failed.length) {
      const why = (failed[0].last_error || "it failed").split("\n")[0];
      const names = failed.map((r) => r.name).join(", ");
      table.setOutcome(group, "error", `${action} failed for ${names}: ${why}`);
      announce(`${group}: ${action} failed for ${names}: ${why}`);
      return;
    }
    const states = {};
    for (const r of rows) states[r.state] = (states[r.state] || 0) + 1;
    const parts = Object.entries(states).map(([state, n]) => `${n} ${state}`).join(", ");
    table.setOutcome(group, "ok", `${DONE_LABEL[action]} all: ${parts} (${took()})`);
    announce(`${group}: ${DONE_LABEL[action]} all instances: ${parts}`);
  });
}

async function controlAll(action, button) {
  if (unavailable(button)) return;
  const label = button.textContent;
  const names = table.names();
  setAvailable(button, false);
  button.setAttribute("aria-busy", "true");
  button.textContent = action === "start" ? "Starting all…" : "Stopping all…";
  names.forEach((n) => table.setPending(n, action));
  toolbarOutcome("busy", `${action} all…`);
  try {
    const data = await api.control(action, null);
    epoch += 1;
    const rows = Array.isArray(data) ? data : (data && data.providers) || [];
    rows.forEach((r) => r && r.name && table.merge(r));
    const states = {};
    for (const r of rows) states[r.state] = (states[r.state] || 0) + 1;
    const parts = Object.entries(states).map(([state, n]) => `${n} ${state}`).join(", ");
    toolbarOutcome("ok", `${action} all done${parts ? `: ${parts}` : ""}`);
  } catch (err) {
    toolbarOutcome("error", `${action} all failed: ${err.message}`);
  } finally {
    names.forEach((n) => table.setPending(n, null));
    setAvailable(button, true);
    button.setAttribute("aria-busy", "false");
    button.textContent = label;
  }
}

// -- strategy -------------------------------------------------------------------------------

function setStrategy(name) {
  if (![...strategySelect.options].some((o) => o.value === name)) {
    strategySelect.append(new Option(name, name));
  }
  strategySelect.value = name;
  strategySelect.dataset.current = name;
}

async function loadConfig() {
  try {
    const config = await api.getConfig();
    const gw = (config && config.gateway) || {};
    // The gateway's registry names the strategies; the page copies none of them.
    strategySelect.replaceChildren(...config.strategies.map((n) => new Option(n, n)));
    if (gw.strategy) setStrategy(gw.strategy);
  } catch (err) {
    toolbarOutcome("error", `cannot read the config: ${err.message}`);
  }
}

async function changeStrategy() {
  const wanted = strategySelect.value;
  const previous = strategySelect.dataset.current || "";
  strategyPending = true;
  strategySelect.disabled = true;
  toolbarOutcome("busy", `switching to ${wanted}…`);
  try {
    await api.putStrategy(wanted);
    setStrategy(wanted);
    setText($("summary-strategy"), wanted);
    toolbarOutcome("ok", `strategy is now ${wanted}`);
  } catch (err) {
    if (previous) setStrategy(previous);
    toolbarOutcome("error", `cannot switch to ${wanted}: ${err.message}`);
  } finally {
    strategyPending = false;
    strategySelect.disabled = false;
    strategySelect.focus();
  }
}

// -- start ----------------------------------------------------------------------------------

strategySelect.addEventListener("change", changeStrategy);
$("start-all").addEventListener("click", (e) => controlAll("start", e.currentTarget));
$("stop-all").addEventListener("click", (e) => controlAll("stop", e.currentTarget));
window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
  charts.draw(history, lastRows.map((r) => r.name));
});
window.addEventListener("resize", () => charts.draw(history, lastRows.map((r) => r.name)));

loadConfig();
poll();
