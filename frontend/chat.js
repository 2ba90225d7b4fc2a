// The chat panel: send a message to any provider or a chosen one, stream the answer token by
// token from POST /v1/chat/completions (SSE), and say who answered and how long it took.

import { CLIENT_HEADER, errorMessage } from "./api.js";
import { el, ms } from "./format.js";

const ANY = "";
// With "any model" and "any provider" the gateway's unknown_model policy picks: by default any
// ready provider answers with its own default model.
const ANY_MODEL_NAME = "default";

/** Split an SSE buffer into complete events; returns [events, rest]. */
export function splitEvents(buffer) {
  const parts = buffer.replace(/\r\n/g, "\n").split("\n\n");
  const rest = parts.pop();
  const events = parts.map((block) => {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    return { event, data: data.join("\n") };
  }).filter((e) => e.data !== "" || e.event !== "message");
  return [events, rest];
}

/** What one SSE event adds to the answer: {text} or {error} or {done}. */
function interpret({ event, data }) {
  if (data === "[DONE]") return { done: true };
  let parsed;
  try {
    parsed = JSON.parse(data);
  } catch {
    return event === "error" ? { error: data } : {};
  }
  if (event === "error" || parsed.error) return { error: errorMessage(parsed, data) };
  const choice = parsed.choices && parsed.choices[0];
  const delta = choice && (choice.delta || choice.message);
  return { text: delta && typeof delta.content === "string" ? delta.content : "" };
}

export class Chat {
  constructor(root, { onAnswered }) {
    this.form = root.querySelector("form");
    this.provider = root.querySelector('[data-testid="chat-provider"]');
    this.model = root.querySelector('[data-testid="chat-model"]');
    this.input = root.querySelector('[data-testid="chat-input"]');
    this.send = root.querySelector('[data-testid="chat-send"]');
    this.stop = root.querySelector('[data-testid="chat-stop"]');
    this.log = root.querySelector('[data-testid="chat-log"]');
    this.onAnswered = onAnswered;
    this.models = []; // [{id, owned_by}]
    this.providerModels = new Map(); // name -> models from /providers, a fallback
    this.controller = null;
    this.form.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.submit(); }
    });
    this.stop.addEventListener("click", () => this.controller && this.controller.abort());
    this.provider.addEventListener("change", () => this.fillModels());
    root.querySelector('[data-testid="chat-clear"]').addEventListener("click", () => {
      this.log.replaceChildren();
    });
  }

  /** Keep the provider choices in step with the table (names in config order). */
  setProviders(rows) {
    const names = rows.map((r) => r.name);
    this.providerModels = new Map(rows.map((r) => [r.name, r.models || []]));
    const current = [...this.provider.options].slice(1).map((o) => o.value);
    if (current.join("\n") === names.join("\n")) return;
    const chosen = this.provider.value;
    this.provider.replaceChildren(el("option", { value: ANY }, "any provider"),
      ...names.map((n) => el("option", { value: n }, n)));
    this.provider.value = names.includes(chosen) ? chosen : ANY;
    this.fillModels();
  }

  setModels(data) {
    this.models = (data && Array.isArray(data.data)) ? data.data : [];
    this.fillModels();
  }

  fillModels() {
    const name = this.provider.value;
    let ids = name === ANY
      ? this.models.map((m) => m.id)
      : this.models.filter((m) => m.owned_by === name).map((m) => m.id);
    if (name !== ANY && ids.length === 0) ids = this.providerModels.get(name) || [];
    ids = [...new Set(ids)];
    const chosen = this.model.value;
    const anyLabel = name === ANY ? "any model (provider default)" : "provider default";
    this.model.replaceChildren(el("option", { value: ANY }, anyLabel),
      ...ids.map((id) => el("option", { value: id }, id)));
    this.model.value = ids.includes(chosen) ? chosen : ANY;
  }

  /** The model to ask for: the chosen one, else the pinned provider's first, else "default". */
  modelToSend() {
    if (this.model.value) return this.model.value;
    const pinned = this.providerModels.get(this.provider.value) || [];
    return pinned[0] || ANY_MODEL_NAME;
  }

  async submit() {
    const text = this.input.value.trim();
    if (!text || this.controller) return;
    this.input.value = "";
    const turn = this.addTurn(text);
    this.controller = new AbortController();
    this.busy(true);
    try {
      await this.stream(text, turn);
    } finally {
      this.controller = null;
      this.busy(false);
      this.input.focus();
    }
  }

  busy(on) {
    this.send.disabled = on;
    this.stop.disabled = !on;
    this.send.textContent = on ? "Streaming…" : "Send";
    this.send.setAttribute("aria-busy", on ? "true" : "false");
  }

  addTurn(text) {
    const turn = el("li", { class: "turn", "data-testid": "chat-turn" });
    const answer = el("div", { class: "answer", "data-testid": "chat-answer" });
    const meta = el("div", { class: "meta", "data-testid": "chat-meta" }, "waiting…");
    turn.append(el("div", { class: "question" }, text), answer, meta);
    this.log.append(turn);
    turn.scrollIntoView({ block: "nearest" });
    return { turn, answer, meta };
  }

  async stream(text, { turn, answer, meta }) {
    const headers = { "Content-Type": "application/json", Accept: "text/event-stream", ...CLIENT_HEADER };
    if (this.provider.value) headers["X-Unigw-Provider"] = this.provider.value;
    const model = this.modelToSend();
    const body = { model, stream: true, messages: [{ role: "user", content: text }] };
    const started = performance.now();
    let firstToken = null;
    let provider = null;
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST", headers, body: JSON.stringify(body), signal: this.controller.signal,
        cache: "no-store", credentials: "same-origin",
      });
      provider = response.headers.get("X-Unigw-Provider");
      if (!response.ok) {
        const data = await response.json().catch(() => null);
        throw new Error(errorMessage(data, `${response.status} ${response.statusText}`));
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let events;
        [events, buffer] = splitEvents(buffer);
        for (const e of events) {
          const part = interpret(e);
          if (part.error) throw new Error(part.error);
          if (part.text) {
            if (firstToken === null) firstToken = performance.now() - started;
            answer.append(document.createTextNode(part.text));
          }
        }
        meta.textContent = `${provider || "?"} · streaming…`;
      }
      this.finish(turn, meta, "ok", { provider, model, started, firstToken });
    } catch (err) {
      const aborted = err.name === "AbortError";
      const reason = aborted ? "stopped" : err.message || String(err);
      this.finish(turn, meta, aborted ? "stopped" : "error", { provider, model, started, firstToken, reason });
    }
  }

  finish(turn, meta, kind, { provider, model, started, firstToken, reason }) {
    const total = performance.now() - started;
    turn.dataset.kind = kind;
    turn.dataset.provider = provider || "";
    const first = firstToken === null ? "" : ` · first token ${ms(firstToken)}`;
    const tail = kind === "ok" ? "" : ` · ${kind === "error" ? "error: " : ""}${reason}`;
    meta.replaceChildren();
    if (provider) {
      meta.append("answered by ", el("strong", { "data-testid": "chat-provider-name" }, provider));
    } else {
      meta.append("no provider answered");
    }
    meta.append(` · model ${model} · ${ms(total)}${first}${tail}`);
    this.onAnswered(kind, meta.textContent);
  }
}
