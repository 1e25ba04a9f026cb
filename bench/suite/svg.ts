// SVG charts for BENCHMARKS.md: renderChart() turns a LineChart or BarChart (model.ts) into a
// standalone SVG document, 720×400, with no dependencies and no timestamps (same input, same
// string). Log axes skip the points they cannot show (values ≤ 0) instead of failing.

import type { BarChart, Chart, LineChart } from "./model.ts";

const W = 720;
const H = 400;
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif";
/** Okabe–Ito: stays distinguishable with the common colour-vision deficiencies. */
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"];
const GRID = "#e6e6e6";
const AXIS = "#555";
const INK = "#222";
/** Rough width of one character of 11–12 px text, for layout. */
const CHAR_W = 6.6;

export function renderChart(chart: Chart): string {
  return chart.kind === "line" ? lineChart(chart) : barChart(chart);
}

/** 3 significant digits with k/M/B suffixes: 12.3k, 0.45, 1.2M, 30k. */
export function compactNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const r = Number(v.toPrecision(3));
  const a = Math.abs(r);
  for (const [unit, suffix] of [[1e9, "B"], [1e6, "M"], [1e3, "k"]] as const) {
    if (a >= unit) return `${Number((r / unit).toPrecision(3))}${suffix}`;
  }
  return String(r);
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

// ---- scales ----

interface Axis {
  ticks: number[];
  /** Position of a value along the axis, 0 at the start and 1 at the end. */
  at: (v: number) => number;
}

interface Box { left: number; top: number; right: number; bottom: number }

const tidy = (v: number) => Number(v.toPrecision(12));

/** 1, 2 or 5 × 10^k, the nearest to `raw` (on a log scale). */
function niceStep(raw: number): number {
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return tidy((n >= Math.sqrt(50) ? 10 : n >= Math.sqrt(10) ? 5 : n >= Math.sqrt(2) ? 2 : 1) * mag);
}

function linearAxis(values: number[], withZero: boolean): Axis {
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  if (withZero) [lo, hi] = [Math.min(0, lo), Math.max(0, hi)];
  if (!(hi > lo)) hi = lo + 1;
  const step = niceStep((hi - lo) / 5);
  const a = tidy(Math.floor(lo / step + 1e-9) * step);
  const b = tidy(Math.ceil(hi / step - 1e-9) * step);
  const ticks: number[] = [];
  for (let i = 0; a + i * step <= b + step * 1e-6; i++) ticks.push(tidy(a + i * step));
  return { ticks, at: (v) => (v - a) / (b - a) };
}

/** Whole decades around the values; ticks at powers of ten (and 2×, 5× over two decades or less). */
function logAxis(values: number[]): Axis {
  const lo = values.length ? Math.min(...values) : 1;
  const hi = values.length ? Math.max(...values) : 10;
  const a = Math.floor(Math.log10(lo) + 1e-9);
  let b = Math.ceil(Math.log10(hi) - 1e-9);
  if (b <= a) b = a + 1;
  const every = Math.ceil((b - a) / 8);
  const mults = b - a <= 2 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = a; e <= b; e += every) {
    for (const m of mults) if (e < b || m === 1) ticks.push(tidy(m * 10 ** e));
  }
  return { ticks, at: (v) => (Math.log10(v) - a) / (b - a) };
}

// ---- drawing ----

const f = (n: number) => String(Math.round(n * 10) / 10);

function text(x: number, y: number, s: string, attrs = ""): string {
  return `<text x="${f(x)}" y="${f(y)}"${attrs ? " " + attrs : ""}>${escapeXml(s)}</text>`;
}

function line(x1: number, y1: number, x2: number, y2: number, stroke: string, width = 1): string {
  return `<line x1="${f(x1)}" y1="${f(y1)}" x2="${f(x2)}" y2="${f(y2)}" stroke="${stroke}" stroke-width="${width}"/>`;
}

function document(title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${FONT}" font-size="12" fill="${INK}">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect class="background" width="${W}" height="${H}" fill="#ffffff"/>`,
    text(W / 2, 28, title, `text-anchor="middle" font-size="16" font-weight="600"`),
    ...body,
    "</svg>",
    "",
  ].join("\n");
}

/** Horizontal gridlines, y tick labels, y axis label and the two axis lines. */
function yFrame(box: Box, y: Axis, label: string): string[] {
  const py = (v: number) => box.bottom - y.at(v) * (box.bottom - box.top);
  const out = y.ticks.flatMap((t) => [
    line(box.left, py(t), box.right, py(t), GRID),
    text(box.left - 8, py(t) + 4, compactNumber(t), `text-anchor="end" class="tick"`),
  ]);
  const [lx, ly] = [box.left - 52, (box.top + box.bottom) / 2];
  out.push(text(lx, ly, label, `text-anchor="middle" transform="rotate(-90 ${f(lx)} ${f(ly)})"`));
  out.push(line(box.left, box.top, box.left, box.bottom, AXIS), line(box.left, box.bottom, box.right, box.bottom, AXIS));
  return out;
}

function lineChart(c: LineChart): string {
  const xLog = c.x.log === true;
  const yLog = c.y.log === true;
  const series = c.series.map((s, i) => ({
    name: s.name,
    colour: PALETTE[i % PALETTE.length]!,
    points: s.points.filter(([x, y]) =>
      Number.isFinite(x) && Number.isFinite(y) && (!xLog || x > 0) && (!yLog || y > 0)),
  }));
  const all = series.flatMap((s) => s.points);
  const xAxis = xLog ? logAxis(all.map((p) => p[0])) : linearAxis(all.map((p) => p[0]), false);
  const yAxis = yLog ? logAxis(all.map((p) => p[1])) : linearAxis(all.map((p) => p[1]), true);
  const maxName = 24;
  const longest = Math.max(0, ...series.map((s) => Math.min(s.name.length, maxName)));
  const legendW = series.length ? 40 + CHAR_W * longest : 0;
  const box: Box = { left: 72, top: 52, right: W - 20 - legendW, bottom: H - 58 };
  const px = (v: number) => box.left + xAxis.at(v) * (box.right - box.left);
  const py = (v: number) => box.bottom - yAxis.at(v) * (box.bottom - box.top);

  const body = xAxis.ticks.flatMap((t) => [
    line(px(t), box.top, px(t), box.bottom, GRID),
    text(px(t), box.bottom + 18, compactNumber(t), `text-anchor="middle" class="tick"`),
  ]);
  body.push(...yFrame(box, yAxis, c.y.label));
  body.push(text((box.left + box.right) / 2, H - 18, c.x.label, `text-anchor="middle"`));
  series.forEach((s, i) => {
    if (s.points.length) {
      const pts = s.points.map(([x, y]) => `${f(px(x))},${f(py(y))}`).join(" ");
      body.push(`<polyline points="${pts}" fill="none" stroke="${s.colour}" stroke-width="2"/>`);
      for (const [x, y] of s.points) body.push(`<circle cx="${f(px(x))}" cy="${f(py(y))}" r="3" fill="${s.colour}"/>`);
    }
    const ly = box.top + 8 + i * 20;
    const name = s.name.length > maxName ? s.name.slice(0, maxName - 1) + "…" : s.name;
    body.push(line(box.right + 16, ly, box.right + 36, ly, s.colour, 2));
    body.push(`<circle cx="${f(box.right + 26)}" cy="${f(ly)}" r="3" fill="${s.colour}"/>`);
    body.push(text(box.right + 42, ly + 4, name, `class="legend"`));
  });
  return document(c.title, body);
}

/** Greedy word wrap to `width` characters; words longer than that are cut. */
function wrap(label: string, width: number): string[] {
  const lines: string[] = [];
  let cur = "";
  for (let word of label.split(/\s+/).filter(Boolean)) {
    while (word.length > width) {
      if (cur) lines.push(cur), (cur = "");
      lines.push(word.slice(0, width));
      word = word.slice(width);
    }
    if (!word) continue;
    if (cur && cur.length + 1 + word.length > width) lines.push(cur), (cur = "");
    cur = cur ? `${cur} ${word}` : word;
  }
  if (cur) lines.push(cur);
  return lines;
}

function barChart(c: BarChart): string {
  const n = Math.max(1, c.bars.length);
  const right = W - 24;
  const wrapped = c.bars.map((b) => wrap(b.label, Math.max(4, Math.floor((right - 72) / n / CHAR_W))));
  // labels that would take more than 3 lines are drawn slanted (35°) instead
  const slant = wrapped.some((l) => l.length > 3);
  const maxChars = 40;
  const widthOf = (label: string) => Math.min(label.length, maxChars) * CHAR_W * 0.9; // 11 px text
  // room on the left for the first slanted label, which reaches left of its bar's centre:
  // left + slot / 2 ≥ its width × cos 35° + 8, with slot = (right - left) / n
  const reach = slant ? widthOf(c.bars[0]?.label ?? "") * 0.82 + 8 : 0;
  const left = Math.min(240, Math.max(72, (reach - right / (2 * n)) / (1 - 1 / (2 * n))));
  const slot = (right - left) / n;
  const longest = Math.max(0, ...c.bars.map((b) => widthOf(b.label)));
  const labelH = slant ? Math.min(170, 30 + longest * 0.57) : 22 + 14 * Math.max(1, ...wrapped.map((l) => l.length));
  const box: Box = { left, top: 60, right, bottom: H - labelH };
  const yAxis = linearAxis(c.bars.map((b) => b.value).filter(Number.isFinite), true);
  const py = (v: number) => box.bottom - yAxis.at(v) * (box.bottom - box.top);

  const body = yFrame(box, yAxis, c.y.label);
  const bw = Math.min(72, slot * 0.62);
  c.bars.forEach((b, i) => {
    const cx = left + (i + 0.5) * slot;
    if (Number.isFinite(b.value)) {
      const top = Math.min(py(b.value), py(0));
      const h = Math.abs(py(b.value) - py(0));
      body.push(`<rect class="bar" x="${f(cx - bw / 2)}" y="${f(top)}" width="${f(bw)}" height="${f(h)}" fill="${PALETTE[0]}"/>`);
      const vy = b.value >= 0 ? py(b.value) - 6 : py(b.value) + 14;
      body.push(text(cx, vy, compactNumber(b.value), `text-anchor="middle" class="value" font-weight="600"`));
    }
    const ly = box.bottom + 18;
    if (slant) {
      const label = b.label.length > maxChars ? b.label.slice(0, maxChars - 1) + "…" : b.label;
      body.push(text(cx, ly, label, `text-anchor="end" class="label" font-size="11" transform="rotate(-35 ${f(cx)} ${f(ly)})"`));
    } else {
      const spans = wrapped[i]!.map((l, j) => `<tspan x="${f(cx)}" dy="${j ? 14 : 0}">${escapeXml(l)}</tspan>`);
      body.push(`<text x="${f(cx)}" y="${f(ly)}" text-anchor="middle" class="label" font-size="11">${spans.join("")}</text>`);
    }
  });
  return document(c.title, body);
}
