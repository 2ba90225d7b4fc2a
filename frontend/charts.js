// Requests per second and latency per provider over the last minutes, drawn on <canvas> by the
// page itself. History keeps the cumulative counters of each poll; rates are their differences.

import { el, median, ms, rate, setText } from "./format.js";

export const WINDOW_S = 300;
const MIN_SPAN_S = 60;
const STRIP = 4; // height of the state strip at the bottom of each chart, in CSS pixels
const SEED_STEP_S = 5; // the step of the points rebuilt from the request log

/** The polled rows over time, kept for WINDOW_S seconds (plus one sample to diff against). */
export class History {
  constructor() {
    this.samples = [];
  }

  add(t, rows) {
    const byName = {};
    for (const r of rows) {
      byName[r.name] = {
        reqs: Number(r.reqs) || 0, errors: Number(r.errors) || 0,
        latency: Number.isFinite(r.latency_ms) ? r.latency_ms : null, state: r.state,
      };
    }
    this.samples.push({ t, byName });
    while (this.samples.length > 2 && this.samples[1].t < t - WINDOW_S * 1000) this.samples.shift();
  }

  /**
   * Samples before the first poll, rebuilt from the request log's calls (GET /requests), so the
   * charts start from the stored history after a page load or a gateway restart. Each provider's
   * counters are made to end at the first poll's: at a step's end they are the first poll's
   * minus the attempts logged after it. Returns how many attempts were placed.
   */
  seed(calls) {
    const first = this.samples[0];
    if (!first || !calls.length) return 0;
    const end = first.t / 1000;
    const attempts = [];
    for (const call of calls) {
      if (call.ts > end) continue;
      for (const a of call.tried || []) {
        const answered = !a.failure && call.provider === a.provider;
        const latency = answered ? (call.stream ? call.ttfb_ms : call.total_ms) : null;
        const error = Boolean(a.failure) && a.failure !== "client_error";
        attempts.push({ ts: call.ts, name: a.provider, error, latency });
      }
    }
    if (!attempts.length) return 0;
    const oldest = Math.min(...attempts.map((a) => a.ts));
    const steps = Math.min(Math.ceil((end - oldest) / SEED_STEP_S) + 1, WINDOW_S / SEED_STEP_S);
    const seeded = [];
    for (let k = steps; k >= 1; k -= 1) seeded.push(seedSample(first, attempts, end - k * SEED_STEP_S));
    this.samples = [...seeded, ...this.samples];
    return attempts.length;
  }

  /** Per-interval points for one provider: {t, rps, latency, state}. */
  series(name) {
    const points = [];
    for (let i = 1; i < this.samples.length; i += 1) {
      const a = this.samples[i - 1];
      const b = this.samples[i];
      const pa = a.byName[name];
      const pb = b.byName[name];
      if (!pb) continue;
      const dt = (b.t - a.t) / 1000;
      // A counter that went down means the gateway restarted: count from zero again.
      const dr = pa && pb.reqs >= pa.reqs ? pb.reqs - pa.reqs : pb.reqs;
      points.push({ t: b.t, rps: dt > 0 ? dr / dt : 0, latency: pb.latency, state: pb.state });
    }
    return points;
  }

  /** Requests per second and the error share over the last `seconds`, all providers. */
  totals(seconds) {
    const n = this.samples.length;
    if (n < 2) return { rps: null, errorRate: null };
    const last = this.samples[n - 1];
    let first = this.samples[n - 2];
    for (const s of this.samples) {
      if (s.t >= last.t - seconds * 1000) { first = s; break; }
    }
    if (first === last) first = this.samples[n - 2];
    let reqs = 0;
    let errors = 0;
    for (const [name, b] of Object.entries(last.byName)) {
      const a = first.byName[name];
      reqs += a && b.reqs >= a.reqs ? b.reqs - a.reqs : b.reqs;
      errors += a && b.errors >= a.errors ? b.errors - a.errors : b.errors;
    }
    const dt = (last.t - first.t) / 1000;
    return { rps: dt > 0 ? reqs / dt : null, errorRate: reqs > 0 ? errors / reqs : null };
  }
}

/** The counters as they were at `at` (seconds): the first poll's, less what came after. */
function seedSample(first, attempts, at) {
  const byName = {};
  for (const [name, now] of Object.entries(first.byName)) {
    const later = attempts.filter((a) => a.name === name && a.ts > at);
    const step = attempts.filter((a) => a.name === name && a.ts <= at && a.ts > at - SEED_STEP_S);
    const latencies = step.map((a) => a.latency).filter((v) => Number.isFinite(v));
    byName[name] = {
      reqs: now.reqs - later.length,
      errors: now.errors - later.filter((a) => a.error).length,
      latency: latencies.length ? latencies.reduce((x, y) => x + y, 0) / latencies.length : null,
      state: null, // not in the log: the state strip stays grey before the page was open
    };
  }
  return { t: at * 1000, byName };
}

function palette() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    rps: v("--chart-rps"), rpsFill: v("--chart-rps-fill"), latency: v("--chart-latency"),
    grid: v("--border"), text: v("--text-dim"), panel: v("--panel"),
    state: {
      ready: v("--ok"), starting: v("--info"), installing: v("--info"), unhealthy: v("--warn"),
      backoff: v("--warn"), stopping: v("--muted"), stopped: v("--muted"), failed: v("--bad"),
    },
  };
}

function fit(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

function plotStrip(ctx, points, key, box, color, fill, xOf) {
  const max = Math.max(...points.map((p) => p[key] ?? 0), 0);
  const scale = max > 0 ? max : 1;
  const x = (t) => box.x + xOf(t) * box.w;
  const y = (v) => box.y + box.h - (v / scale) * (box.h - 2);
  ctx.beginPath();
  let open = false;
  let startX = 0;
  for (const p of points) {
    const value = p[key];
    if (value === null || value === undefined) { open = false; continue; }
    if (!open) { ctx.moveTo(x(p.t), y(value)); startX = x(p.t); open = true; }
    else ctx.lineTo(x(p.t), y(value));
  }
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.stroke();
  if (fill && points.length > 1) {
    const lastX = x(points[points.length - 1].t);
    ctx.lineTo(lastX, box.y + box.h);
    ctx.lineTo(startX, box.y + box.h);
    ctx.closePath();
    ctx.fillStyle = fill;
    ctx.fill();
  }
  return max;
}

/** Right-aligned text on a small backing box, readable over the lines it sits on. */
function label(ctx, text, right, y, colors) {
  const width = ctx.measureText(text).width;
  ctx.fillStyle = colors.panel;
  ctx.globalAlpha = 0.8;
  ctx.fillRect(right - width - 2, y - 1, width + 4, 12);
  ctx.globalAlpha = 1;
  ctx.fillStyle = colors.text;
  ctx.fillText(text, right, y);
}

/** Where time t falls across the chart, 0..1: the last `span` seconds up to `now`. */
function timeScale(now, span) {
  return (t) => (t - (now - span * 1000)) / (span * 1000);
}

function drawChart(canvas, points, colors, xOf) {
  const { ctx, w, h } = fit(canvas);
  const half = (h - STRIP - 2) / 2;
  const top = { x: 0, y: 0, w, h: half - 1 };
  const bottom = { x: 0, y: half + 1, w, h: half - 1 };
  ctx.fillStyle = colors.grid;
  ctx.fillRect(0, half, w, 1);
  const maxRps = plotStrip(ctx, points, "rps", top, colors.rps, colors.rpsFill, xOf);
  const maxLat = plotStrip(ctx, points, "latency", bottom, colors.latency, null, xOf);
  ctx.font = "10px system-ui, sans-serif";
  ctx.textAlign = "right";
  ctx.textBaseline = "top";
  if (maxRps > 0) label(ctx, `max ${rate(maxRps)}`, w - 2, top.y + 1, colors);
  if (maxLat > 0) label(ctx, `max ${ms(maxLat)}`, w - 2, bottom.y + 1, colors);
  const x = (t) => xOf(t) * w;
  for (let i = 0; i < points.length; i += 1) {
    const x0 = Math.max(0, x(i ? points[i - 1].t : points[i].t - 1500));
    ctx.fillStyle = colors.state[points[i].state] || colors.grid;
    ctx.fillRect(x0, h - STRIP, Math.max(1, x(points[i].t) - x0), STRIP);
  }
}

function buildCard(name) {
  const card = el("figure", { class: "chart", "data-testid": "chart", "data-name": name });
  const caption = el("figcaption");
  caption.append(
    el("span", { class: "cname" }, name),
    el("span", { class: "cval rps", title: "requests per second" }),
    el("span", { class: "cval lat", title: "latency" }),
  );
  const canvas = el("canvas", {
    role: "img", "aria-label": `${name}: requests per second and latency, last 5 minutes`,
  });
  card.append(caption, canvas);
  return card;
}

/** The grid of small charts, one per provider, redrawn after every poll. */
export class Charts {
  constructor(container) {
    this.container = container;
    this.cards = new Map();
  }

  draw(history, names) {
    const colors = palette();
    const samples = history.samples;
    const now = samples.length ? samples[samples.length - 1].t : 0;
    // Until WINDOW_S has passed, the charts span the time the page has been open (at least a
    // minute), so a fresh page does not squeeze its first points into the right edge.
    const span = samples.length ? Math.min(WINDOW_S, Math.max(MIN_SPAN_S, (now - samples[0].t) / 1000)) : WINDOW_S;
    const xOf = timeScale(now, span);
    names.forEach((name, i) => {
      let card = this.cards.get(name);
      if (!card) {
        card = buildCard(name);
        this.cards.set(name, card);
      }
      if (this.container.children[i] !== card) this.container.insertBefore(card, this.container.children[i] || null);
      const points = history.series(name);
      card.dataset.points = String(points.length);
      const last = points[points.length - 1];
      setText(card.querySelector(".rps"), last ? rate(last.rps) : "");
      setText(card.querySelector(".lat"), last ? ms(last.latency) : "");
      drawChart(card.querySelector("canvas"), points, colors, xOf);
    });
    for (const [name, card] of this.cards) {
      if (!names.includes(name)) { card.remove(); this.cards.delete(name); }
    }
  }
}

/** The median of the providers' current latencies (those that have one). */
export function medianLatency(rows) {
  return median(rows.map((r) => r.latency_ms).filter((v) => v !== null && v !== undefined));
}
