// The providers table: one <tr> per provider, created once and updated in place on every poll
// (so focus, an open model list and a button's progress survive), plus a detail row under it
// that shows a failed provider's reason in full, why it does not serve, missing secrets and
// warnings. The instances of a provider with `instances:` (rows whose `group` is set) come
// under a line of that provider (its name, how many are ready, their ports), indented; that
// line's buttons act on every instance at once (POST /providers/{group}/restart).

import { DASH, bytes, clock, count, duration, el, ms, setText } from "./format.js";
import { secretForms } from "./secrets.js";

export const ACTIONS = ["start", "stop", "restart"];
const BUSY_LABEL = { start: "Start…", stop: "Stop…", restart: "Restart…" };
export const BUSY_TEXT = { start: "starting…", stop: "stopping…", restart: "restarting…" };
const DONE_LABEL = { start: "started", stop: "stopped", restart: "restarted" };
const LABEL = { start: "Start", stop: "Stop", restart: "Restart" };
const COLUMNS = 14;

// A button is offered only where it can do something (start runs a stopped or failed
// provider; the others are already on their way); the gateway still has the last word.
const OFFERED = {
  start: (state) => state === "stopped" || state === "failed",
  stop: (state) => state !== "stopped" && state !== "stopping",
  restart: (state) => state !== "stopping",
};

// Buttons are made unavailable with aria-disabled, not disabled: a disabled button loses
// keyboard focus, and the user who pressed Stop should still be on it when it is done.
export function setAvailable(button, available) {
  const value = available ? "false" : "true";
  if (button.getAttribute("aria-disabled") !== value) button.setAttribute("aria-disabled", value);
}

export function unavailable(button) {
  return button.getAttribute("aria-disabled") === "true";
}

function cell(field, extra = {}) {
  return el("td", { "data-field": field, ...extra });
}

function buildRow(name) {
  const tr = el("tr", { "data-testid": "provider-row", "data-name": name, class: "provider" });
  const nameCell = el("th", { scope: "row", "data-field": "name" });
  nameCell.append(el("span", { class: "pname" }, name), el("span", { class: "pdesc" }));
  const state = cell("state");
  state.append(el("span", { class: "badge", "data-testid": "state" }));
  const serving = cell("serving");
  serving.append(el("span", { class: "badge serving", "data-testid": "serving" }));
  const pid = cell("pid", { class: "num" });
  pid.append(el("span", { class: "pid" }), el("span", { class: "sub res" }));
  const models = cell("models");
  const details = el("details", { class: "models" });
  details.append(el("summary"), el("ul"));
  models.append(details);
  tr.append(
    nameCell, cell("port", { class: "num" }), state, pid,
    cell("uptime", { class: "num" }), cell("restarts", { class: "num" }),
    cell("health", { class: "num" }), serving, cell("reqs", { class: "num" }),
    cell("errors", { class: "num" }), cell("in_flight", { class: "num" }),
    cell("latency", { class: "num" }), models, buildActions(name),
  );
  const detail = el("tr", { class: "detail", "data-testid": "provider-detail", "data-name": name });
  const detailCell = el("td", { colspan: COLUMNS });
  detail.append(detailCell);
  detail.hidden = true;
  return { tr, detail };
}

// The start / stop / restart buttons of a row, or (`all`) of a group's line: "Restart qw#2",
// "Restart all qw", so every button's accessible name is its own.
function controlButtons(name, label, all = false) {
  const group = el("div", { class: "actions", role: "group", "aria-label": label });
  for (const action of ACTIONS) {
    group.append(el("button", {
      type: "button", "data-action": action, "data-testid": `${action}-${all ? "all-" : ""}button`,
      "aria-label": `${LABEL[action]} ${all ? "all " : ""}${name}`,
    }, LABEL[action]));
  }
  return group;
}

function buildActions(name) {
  const td = cell("actions");
  const group = controlButtons(name, `${name} controls`);
  group.append(el("button", {
    type: "button", "data-action": "logs", "data-testid": "logs-button", class: "quiet",
    "aria-label": `Show the log of ${name}`,
  }, "Logs"));
  td.append(group, el("div", { class: "outcome", "data-testid": "row-outcome" }));
  return td;
}

function buildGroupLine(group) {
  const tr = el("tr", { class: "group", "data-testid": "provider-group", "data-group": group });
  const th = el("th", { scope: "rowgroup", colspan: COLUMNS - 1 });
  th.append(el("span", { class: "pname" }, group), el("span", { class: "gsum" }));
  const td = cell("actions");
  td.append(controlButtons(group, `${group}: every instance`, true),
    el("div", { class: "outcome", "data-testid": "group-outcome" }));
  tr.append(th, td);
  return tr;
}

function healthText(row) {
  if (row.health === "ok") return row.health_ms === null || row.health_ms === undefined
    ? "ok" : ms(row.health_ms);
  if (row.health === "fail") return "fail";
  return DASH;
}

function resourcesText(row) {
  if (!row.pid) return "";
  const cpu = Number.isFinite(row.cpu_percent) ? `${row.cpu_percent.toFixed(1)}%` : "";
  const rss = Number.isFinite(row.rss_bytes) ? bytes(row.rss_bytes) : "";
  return [cpu, rss].filter(Boolean).join(" · ");
}

// Whether its answers are really answers (the gateway's outcomes), beside the lifecycle state.
const NOT_SERVING = ["failing", "rate_limited", "auth_failed"];

function lastFailure(row) {
  if (!row.serving_class) return "";
  const at = Number.isFinite(row.serving_error_at)
    ? ` at ${clock(new Date(row.serving_error_at * 1000))}` : "";
  return `${row.serving_class}${at}: ${row.serving_error || ""}`;
}

function servingTitle(row) {
  const failure = lastFailure(row);
  const head = `serving: ${row.serving}`;
  return failure ? `${head}\nlast failure: ${failure}` : head;
}

function detailLines(row) {
  const lines = [];
  if (NOT_SERVING.includes(row.serving)) lines.push([row.serving.replace("_", " "), lastFailure(row)]);
  const showError = row.last_error && !["ready", "stopped"].includes(row.state);
  if (showError) lines.push([row.state === "failed" ? "failed" : "last error", row.last_error]);
  if (row.missing_secrets && row.missing_secrets.length) {
    lines.push(["missing secrets", row.missing_secrets.join(", ")]);
  }
  for (const warning of row.warnings || []) lines.push(["warning", warning]);
  if (row.enabled === false) lines.push(["disabled", "enabled: false in the config"]);
  return lines;
}

function updateModels(td, models) {
  const key = models.join("\n");
  if (td.dataset.models === key) return;
  td.dataset.models = key;
  const [summary, list] = td.querySelector("details").children;
  summary.textContent = models.length === 0 ? DASH
    : models.length === 1 ? models[0] : `${models[0]} +${models.length - 1}`;
  list.replaceChildren(...models.map((m) => el("li", {}, m)));
}

/** The table body of providers; `onAction(name, action)` is called when a button is pressed. */
export class ProviderTable {
  constructor(tbody, { onAction, onGroupAction }) {
    this.tbody = tbody;
    this.rows = new Map();
    this.groups = new Map(); // provider with instances → its line
    this.pending = new Map(); // provider or group → the action under way
    this.timers = new Map(); // row or group line → its outcome's clearing timer
    tbody.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button || unavailable(button)) return;
      const tr = button.closest("tr[data-name], tr[data-group]");
      if (tr && tr.dataset.name) onAction(tr.dataset.name, button.dataset.action, button);
      else if (tr) onGroupAction(tr.dataset.group, button.dataset.action, button);
    });
  }

  /** Show these rows, in this order; rows of providers no longer configured go away. */
  update(rows) {
    const seen = new Set();
    const groups = new Set();
    let last = null;
    const place = (node) => {
      const anchor = last ? last.nextSibling : this.tbody.firstChild;
      if (anchor !== node) this.tbody.insertBefore(node, anchor);
      last = node;
    };
    for (const row of rows) {
      seen.add(row.name);
      if (row.group && !groups.has(row.group)) {
        groups.add(row.group);
        place(this.groupLine(row.group, rows.filter((r) => r.group === row.group)));
      }
      let entry = this.rows.get(row.name);
      if (!entry) {
        entry = { ...buildRow(row.name), row: null };
        this.rows.set(row.name, entry);
      }
      entry.row = row;
      entry.tr.classList.toggle("instance", Boolean(row.group));
      this.render(entry);
      place(entry.tr);
      place(entry.detail);
    }
    for (const [name, entry] of this.rows) {
      if (seen.has(name)) continue;
      entry.tr.remove();
      entry.detail.remove();
      this.rows.delete(name);
    }
    for (const [group, tr] of this.groups) {
      if (groups.has(group)) continue;
      tr.remove();
      this.groups.delete(group);
    }
  }

  /** The line of a provider with instances, made once and updated in place. */
  groupLine(group, members) {
    let tr = this.groups.get(group);
    if (!tr) {
      tr = buildGroupLine(group);
      this.groups.set(group, tr);
    }
    const ready = members.filter((r) => r.state === "ready").length;
    const ports = members.map((r) => r.port).join(", ");
    const s = members.length === 1 ? "" : "s"; // a count edited down to 1 reads right
    setText(tr.querySelector(".gsum"),
      `${members.length} instance${s}, ${ready} ready · port${s} ${ports}`);
    this.renderGroupButtons(tr, group, members);
    return tr;
  }

  /** A group's buttons: each offered when it can do something for one of its instances. */
  renderGroupButtons(tr, group, members) {
    const busy = this.pending.get(group);
    for (const button of tr.querySelectorAll("button[data-action]")) {
      const action = button.dataset.action;
      setAvailable(button, busy === undefined && members.some((r) => OFFERED[action](r.state)));
      setText(button, busy === action ? BUSY_LABEL[action] : LABEL[action]);
      button.setAttribute("aria-busy", busy === action ? "true" : "false");
    }
  }

  /** The rows of a group's instances, as last shown. */
  members(group) {
    return [...this.rows.values()].map((e) => e.row).filter((r) => r && r.group === group);
  }

  render({ tr, detail, row }) {
    const f = (field) => tr.querySelector(`[data-field="${field}"]`);
    // a remote provider shows where it is; a unigw node, its provider that answered last
    const where = row.url || row.runtime || "";
    setText(f("name").querySelector(".pdesc"), row.inner ? `${where} → ${row.inner}` : where);
    f("name").title = row.description || "";
    setText(f("port"), count(row.port));
    const badge = f("state").querySelector(".badge");
    setText(badge, row.state);
    badge.dataset.state = row.state;
    tr.dataset.state = row.state;
    const serving = f("serving").querySelector(".serving");
    setText(serving, row.serving || "unknown");
    serving.dataset.serving = row.serving || "unknown";
    serving.title = servingTitle(row);
    setText(f("pid").querySelector(".pid"), row.pid ? String(row.pid) : DASH);
    setText(f("pid").querySelector(".res"), resourcesText(row));
    setText(f("uptime"), row.state === "ready" || row.pid ? duration(row.uptime_s) : DASH);
    setText(f("restarts"), count(row.restarts));
    setText(f("health"), healthText(row));
    f("health").dataset.health = row.health || "";
    setText(f("reqs"), count(row.reqs));
    setText(f("errors"), count(row.errors));
    f("errors").classList.toggle("bad", Number(row.errors) > 0);
    setText(f("in_flight"), count(row.in_flight));
    setText(f("latency"), ms(row.latency_ms));
    updateModels(f("models"), row.models || []);
    this.renderButtons(tr, row);
    this.renderDetail(detail, detailLines(row), row);
  }

  renderButtons(tr, row) {
    const busy = this.pending.get(row.name);
    for (const button of tr.querySelectorAll("button[data-action]")) {
      const action = button.dataset.action;
      if (action === "logs") continue;
      setAvailable(button, busy === undefined && OFFERED[action](row.state));
      setText(button, busy === action ? BUSY_LABEL[action] : LABEL[action]);
      button.setAttribute("aria-busy", busy === action ? "true" : "false");
    }
  }

  renderDetail(detail, lines, row) {
    const missing = row.missing_secrets || [];
    const key = JSON.stringify([lines, missing]);
    if (detail.dataset.key === key) return; // unchanged: a half-typed secret stays as it is
    detail.dataset.key = key;
    detail.hidden = lines.length === 0;
    detail.firstChild.replaceChildren(...lines.map(([label, text]) => {
      const p = el("p", { class: `reason ${label.replace(/\s+/g, "-")}` });
      p.append(el("strong", {}, `${label}: `), el("span", { "data-testid": "reason" }, text));
      return p;
    }), ...secretForms(row.name, missing, (text) => this.setOutcome(row.name, "ok", text)));
  }

  /** Mark an action on one provider, or on a group and so each of its instances, as under
   * way (null: done); re-renders their buttons. */
  setPending(name, action) {
    if (action) this.pending.set(name, action);
    else this.pending.delete(name);
    const entry = this.rows.get(name);
    if (entry) this.renderButtons(entry.tr, entry.row);
    const line = this.groups.get(name);
    if (!line) return;
    const members = this.members(name);
    members.forEach((r) => this.setPending(r.name, action));
    this.renderGroupButtons(line, name, members);
  }

  /** Show what an action did ("ok") or why it failed ("error") under the buttons of a row,
   * or of a group's line. */
  setOutcome(name, kind, text) {
    const tr = this.rows.has(name) ? this.rows.get(name).tr : this.groups.get(name);
    if (!tr) return;
    const node = tr.querySelector(".outcome");
    node.textContent = text;
    node.dataset.kind = kind;
    clearTimeout(this.timers.get(tr));
    if (kind === "ok") this.timers.set(tr, setTimeout(() => { node.textContent = ""; }, 10000));
  }

  /** Merge a row answered by a control route into what is shown, until the next poll. */
  merge(row) {
    const entry = this.rows.get(row.name);
    if (!entry) return;
    entry.row = { ...entry.row, ...row };
    this.render(entry);
    if (entry.row.group && this.groups.has(entry.row.group)) {
      this.groupLine(entry.row.group, this.members(entry.row.group));
    }
  }

  names() {
    return [...this.rows.keys()];
  }

  row(name) {
    const entry = this.rows.get(name);
    return entry ? entry.row : null;
  }
}

export { DONE_LABEL };
