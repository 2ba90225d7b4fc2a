// The log panel: the last lines of one provider's captured output (install and crash output
// included), from GET /providers/{name}/logs?n=N, refreshed while "follow" is on.

import { getLogs } from "./api.js";
import { clock, el, plain } from "./format.js";

const FOLLOW_MS = 2000;

export class Logs {
  constructor(root) {
    this.root = root;
    this.select = root.querySelector('[data-testid="log-provider"]');
    this.lines = root.querySelector('[data-testid="log-lines"]');
    this.follow = root.querySelector('[data-testid="log-follow"]');
    this.text = root.querySelector('[data-testid="log-text"]');
    this.status = root.querySelector('[data-testid="log-status"]');
    this.timer = null;
    this.seq = 0;
    root.querySelector('[data-testid="log-refresh"]').addEventListener("click", () => this.load());
    this.select.addEventListener("change", () => this.load());
    this.lines.addEventListener("change", () => this.load());
    this.follow.addEventListener("change", () => this.schedule());
  }

  setProviders(names) {
    const current = [...this.select.options].slice(1).map((o) => o.value);
    if (current.join("\n") === names.join("\n")) return;
    const chosen = this.select.value;
    this.select.replaceChildren(el("option", { value: "" }, "choose a provider…"),
      ...names.map((n) => el("option", { value: n }, n)));
    this.select.value = names.includes(chosen) ? chosen : "";
  }

  /** Show one provider's log (the row's "Logs" button). */
  open(name) {
    this.select.value = name;
    this.root.scrollIntoView({ behavior: "smooth", block: "start" });
    this.load().then(() => this.text.focus({ preventScroll: true }));
  }

  async load() {
    const name = this.select.value;
    const seq = ++this.seq;
    if (!name) {
      this.text.textContent = "";
      this.status.textContent = "";
      return;
    }
    try {
      const data = await getLogs(name, Number(this.lines.value) || 200);
      if (seq !== this.seq) return;
      const lines = (data && data.lines) || [];
      const atBottom = this.text.scrollTop + this.text.clientHeight >= this.text.scrollHeight - 8;
      const content = lines.map(plain).join("\n");
      if (this.text.textContent !== content) this.text.textContent = content;
      if (atBottom || seq === 1) this.text.scrollTop = this.text.scrollHeight;
      this.text.dataset.name = name;
      this.status.textContent = `${lines.length} lines of ${name} · ${clock(new Date())}`;
      this.status.dataset.kind = "ok";
    } catch (err) {
      if (seq !== this.seq) return;
      this.status.textContent = `cannot read the log of ${name}: ${err.message}`;
      this.status.dataset.kind = "error";
    } finally {
      this.schedule();
    }
  }

  schedule() {
    clearTimeout(this.timer);
    if (this.follow.checked && this.select.value) {
      this.timer = setTimeout(() => this.load(), FOLLOW_MS);
    }
  }
}
