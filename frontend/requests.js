// The requests panel: the newest calls from the gateway's request log (GET /requests), one row
// each (when, route, model, the provider that answered, status, times, tokens, and every
// provider tried with how it failed), filtered by provider and outcome, refreshed with the poll.

import { getRequests } from "./api.js";
import { DASH, clock, el, ms, setText } from "./format.js";

const ROWS = 50;
const OUTCOMES = { all: null, ok: "false", failed: "true" }; // the `failed=` of each choice

function when(ts) {
  const date = new Date(ts * 1000);
  const today = new Date().toDateString() === date.toDateString();
  return today ? clock(date) : `${date.toLocaleDateString()} ${clock(date)}`;
}

function tokens(row) {
  if (row.prompt_tokens === null && row.completion_tokens === null) return DASH;
  const n = (v) => (v === null || v === undefined ? "?" : String(v));
  return `${n(row.prompt_tokens)} + ${n(row.completion_tokens)}`;
}

/** Each provider tried: a chip, red with its failure class when it failed (its message on hover). */
function tried(row) {
  const td = el("td", { "data-field": "tried" });
  for (const attempt of row.tried || []) {
    const failed = Boolean(attempt.failure);
    const text = failed ? `${attempt.provider} ${attempt.failure}` : attempt.provider;
    const title = [attempt.model && `model ${attempt.model}`, attempt.message].filter(Boolean).join(": ");
    td.append(el("span", { class: "attempt", "data-failed": String(failed), title: title || null }, text));
  }
  if (!td.childElementCount) td.textContent = DASH;
  return td;
}

function buildRow(row) {
  const tr = el("tr", {
    "data-testid": "request-row", "data-id": row.id, "data-ok": String(row.ok),
    "data-provider": row.provider || "",
  });
  const model = row.model_sent && row.model_sent !== row.model_asked
    ? `${row.model_asked || DASH} → ${row.model_sent}` : row.model_asked || DASH;
  const route = el("td", { "data-field": "route" }, row.route);
  if (row.stream) route.append(el("span", { class: "sub" }, "stream"));
  tr.append(
    el("td", { "data-field": "time", class: "num" }, when(row.ts)), route,
    el("td", { "data-field": "model" }, model),
    el("td", { "data-field": "provider" }, row.provider || DASH),
    el("td", { "data-field": "status", class: "num" }, String(row.status)),
    el("td", { "data-field": "ttfb", class: "num" }, ms(row.ttfb_ms)),
    el("td", { "data-field": "total", class: "num" }, ms(row.total_ms)),
    el("td", { "data-field": "tokens", class: "num", title: "prompt + completion" }, tokens(row)),
    tried(row),
  );
  return tr;
}

export class Requests {
  constructor(root) {
    this.body = root.querySelector('[data-testid="requests"]');
    this.provider = root.querySelector('[data-testid="requests-provider"]');
    this.outcome = root.querySelector('[data-testid="requests-outcome"]');
    this.status = root.querySelector('[data-testid="requests-status"]');
    this.seq = 0;
    this.busy = false;
    this.shownKey = null;
    this.provider.addEventListener("change", () => this.refresh(true));
    this.outcome.addEventListener("change", () => this.refresh(true));
  }

  setProviders(names) {
    const current = [...this.provider.options].slice(1).map((o) => o.value);
    if (current.join("\n") === names.join("\n")) return;
    const chosen = this.provider.value;
    this.provider.replaceChildren(el("option", { value: "" }, "every provider"),
      ...names.map((n) => el("option", { value: n }, n)));
    this.provider.value = names.includes(chosen) ? chosen : "";
  }

  /** Load the newest rows (skipped while a load is under way, unless a filter changed). */
  async refresh(filtered = false) {
    if (this.busy && !filtered) return;
    const seq = ++this.seq;
    this.busy = true;
    try {
      const data = await getRequests({
        n: ROWS, provider: this.provider.value || null, failed: OUTCOMES[this.outcome.value],
      });
      if (seq !== this.seq) return;
      this.show((data && data.requests) || [], data && data.enabled !== false);
    } catch (err) {
      if (seq !== this.seq) return;
      setText(this.status, `cannot read the request log: ${err.message}`);
      this.status.dataset.kind = "error";
    } finally {
      if (seq === this.seq) this.busy = false;
    }
  }

  show(rows, enabled) {
    // Rebuild only when the rows or the filter changed, so a poll does not disturb a hover.
    const key = `${this.provider.value}|${this.outcome.value}|${rows.map((r) => r.id).join(",")}`;
    if (key !== this.shownKey) {
      this.shownKey = key;
      this.body.replaceChildren(...rows.map(buildRow));
    }
    const what = enabled ? `${rows.length} newest call${rows.length === 1 ? "" : "s"}` : "the request log is off";
    setText(this.status, `${what} · ${clock(new Date())}`);
    this.status.dataset.kind = "ok";
  }
}
