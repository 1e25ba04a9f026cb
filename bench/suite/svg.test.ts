import { describe, expect, it } from "vitest";
import type { BarChart, LineChart } from "./model.ts";
import { compactNumber, renderChart } from "./svg.ts";

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;
const ticks = (svg: string) => [...svg.matchAll(/class="tick">([^<]*)</g)].map((m) => m[1]);

const line: LineChart = {
  kind: "line",
  file: "rule-programming.svg",
  title: "Programming time",
  x: { label: "services", log: true },
  y: { label: "ms" },
  series: [
    { name: "nft", points: [[1000, 12], [10000, 80], [30000, 260]] },
    { name: "ipvs", points: [[1000, 3], [10000, 20], [30000, 70]] },
  ],
};

const bars: BarChart = {
  kind: "bar",
  file: "paths.svg",
  title: "Connections per second",
  y: { label: "conn/s" },
  bars: [
    { label: "direct", value: 12345 },
    { label: "through the VIP", value: 0.45 },
    { label: "through haproxy", value: 1_200_000 },
  ],
};

describe("compactNumber", () => {
  it("keeps 3 significant digits with k/M suffixes", () => {
    expect([12345, 0.45, 1_200_000, 1000, 30000, 999_950, 0].map(compactNumber))
      .toEqual(["12.3k", "0.45", "1.2M", "1k", "30k", "1M", "0"]);
  });
});

describe("renderChart: line", () => {
  const svg = renderChart(line);

  it("is a standalone SVG document of about 720×400", () => {
    expect(svg.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\"")).toBe(true);
    expect(svg).toContain('width="720" height="400"');
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
  });

  it("draws one polyline per series, a marker per point and a legend entry per series", () => {
    expect(count(svg, /<polyline /g)).toBe(2);
    expect(count(svg, /<circle /g)).toBe(6 + 2); // points + legend markers
    expect(svg).toContain('class="legend">nft<');
    expect(svg).toContain('class="legend">ipvs<');
    expect(svg).toMatch(/<polyline [^>]*stroke="#0072B2"/);
    expect(svg).toMatch(/<polyline [^>]*stroke="#E69F00"/);
  });

  it("puts log ticks at powers of ten with compact labels", () => {
    const labels = ticks(svg);
    expect(labels).toContain("1k");
    expect(labels).toContain("10k");
    expect(labels).toContain("100k");
  });

  it("starts a linear y axis at 0 with 1/2/5 steps", () => {
    // y data 3..260: step 50 → 0, 50, …, 300
    const labels = ticks(svg);
    for (const t of ["0", "50", "100", "300"]) expect(labels).toContain(t);
    expect(labels).not.toContain("3");
  });

  it("does not throw on values ≤ 0 on a log axis, and skips them", () => {
    const bad: LineChart = {
      ...line,
      y: { label: "ms", log: true },
      series: [{ name: "a", points: [[0, 5], [-1, 2], [100, 0], [1000, 10], [10000, 100]] }],
    };
    const out = renderChart(bad);
    expect(out).not.toContain("NaN");
    expect(out).not.toContain("Infinity");
    expect(count(out, /<polyline /g)).toBe(1);
    expect(count(out, /<circle /g)).toBe(2 + 1);
  });

  it("does not throw without any points", () => {
    const out = renderChart({ ...line, series: [{ name: "empty", points: [] }] });
    expect(out).not.toContain("NaN");
    expect(count(out, /<polyline /g)).toBe(0);
  });

  it("is deterministic", () => {
    expect(renderChart(line)).toBe(svg);
  });
});

describe("renderChart: bar", () => {
  const svg = renderChart(bars);

  it("draws one rect per bar with its value on top", () => {
    expect(count(svg, /<rect class="bar"/g)).toBe(3);
    for (const v of ["12.3k", "0.45", "1.2M"]) expect(svg).toContain(`class="value" font-weight="600">${v}<`);
  });

  it("labels every bar", () => {
    expect(svg).toContain(">direct<");
    expect(svg).toMatch(/>through the VIP</);
  });

  it("wraps or slants long labels instead of letting them overlap", () => {
    const long = "a label that is about thirty chars";
    const few = renderChart({ ...bars, bars: [{ label: long, value: 1 }, { label: long, value: 2 }, { label: long, value: 3 }] });
    expect(count(few, /<tspan /g)).toBeGreaterThan(3); // wrapped onto several lines
    const many = renderChart({ ...bars, bars: Array.from({ length: 12 }, (_, i) => ({ label: `${long} ${i}`, value: i })) });
    expect(count(many, /rotate\(-35 /g)).toBe(12);
  });
});

describe("renderChart: text", () => {
  it("escapes &, <, > and \" everywhere", () => {
    const out = renderChart({
      ...bars,
      title: `a & b <c> "d"`,
      y: { label: "<y>" },
      bars: [{ label: `x & "y"`, value: 1 }],
    });
    expect(out).toContain("a &amp; b &lt;c&gt; &quot;d&quot;");
    expect(out).toContain("&lt;y&gt;");
    expect(out).toContain("x &amp; &quot;y&quot;");
    expect(out).not.toMatch(/a & b|<c>|<y>/);
    const legend = renderChart({ ...line, series: [{ name: "<s&>", points: [[1, 1]] }] });
    expect(legend).toContain("&lt;s&amp;&gt;");
  });
});
