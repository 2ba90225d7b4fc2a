// The field a provider that failed for a missing secret offers: paste the value, Save. It is
// sent once to POST /providers/NAME/secret (stored in .env, mode 0600, like `unigw secret set`;
// a running unigw then starts the provider) and never shown, kept or logged by this page.

import { storeSecret } from "./api.js";
import { el } from "./format.js";

/** One form per missing secret of `provider`; `done(text)` reports what happened. */
export function secretForms(provider, names, done) {
  return names.map((name) => {
    const input = el("input", {
      type: "password", autocomplete: "off", spellcheck: "false",
      "aria-label": `value of ${name}`, "data-testid": "secret-value", "data-secret": name,
    });
    const save = el("button", { type: "submit", "data-testid": "secret-save" }, "Save");
    const status = el("span", { class: "secret-status", "data-testid": "secret-status", role: "status" });
    const form = el("form", { class: "secret", "data-testid": "secret-form" });
    form.append(el("label", {}, `${name} `), input, save, status);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = input.value;
      if (!value.trim()) return;
      save.disabled = true;
      status.textContent = "storing…";
      try {
        await storeSecret(provider, name, value);
        input.value = "";
        status.textContent = "stored; starting the provider…";
        done(`${name} stored for ${provider}`);
      } catch (err) {
        status.textContent = `not stored: ${err.message}`;
      } finally {
        save.disabled = false;
      }
    });
    return form;
  });
}
