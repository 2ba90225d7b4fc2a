// Small display helpers shared by the dashboard's modules. Everything is rendered with
// textContent, never innerHTML: provider names, logs and errors are data, not markup.

export const DASH = "—";

/** 75 → "1m 15s"; null → "—". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return DASH;
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** 12.345 → "12 ms"; 1234 → "1.23 s"; null → "—". */
export function ms(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  if (value < 10) return `${value.toFixed(1)} ms`;
  if (value < 1000) return `${Math.round(value)} ms`;
  return `${(value / 1000).toFixed(2)} s`;
}

/** 1536 → "1.5 KiB". */
export function bytes(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  const units = ["B", "KiB", "MiB", "GiB"];
  let v = value;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export function count(value) {
  return value === null || value === undefined ? DASH : String(value);
}

/** 0.0123 → "1.2%". */
export function percent(fraction) {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return DASH;
  return `${(fraction * 100).toFixed(fraction < 0.1 ? 1 : 0)}%`;
}

/** A rate per second: 0 → "0/s", 2.345 → "2.3/s". */
export function rate(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  return `${value < 10 ? value.toFixed(1).replace(/\.0$/, "") : Math.round(value)}/s`;
}

export function median(values) {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const mid = Math.floor(xs.length / 2);
  return xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}

/** "12:03:04" for a Date. */
export function clock(date) {
  return date.toLocaleTimeString([], { hour12: false });
}

/** Terminal colour codes (ESC[…m and friends) stripped from a log line. */
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07/g;
export function plain(line) {
  return String(line).replace(ANSI, "");
}

/** Create an element with attributes and text: el("td", {"data-field": "pid"}, "123"). */
export function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Set textContent only when it changed, so polling does not disturb selection or focus. */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}
