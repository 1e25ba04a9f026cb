// What one run of the benchmark suite found: the data `npm run bench` keeps
// (bench/report/*.json) and renders into BENCHMARKS.md and its charts.

/** One measured figure, beside the baseline it is compared with in the same run. */
export interface Figure {
  /** Row label, e.g. "add one service at 10k services". */
  name: string;
  /** The figure itself (a median unless `stat` says otherwise). */
  value: number;
  unit: string;
  /** Whether more is better (q/s, conn/s) or less (ms). */
  better: "higher" | "lower";
  /** e.g. "p50", "median of 5": printed beside the value. */
  stat?: string;
  /** Tail of the same samples, same unit, when there is one. */
  p99?: number;
  /** What the figure is compared with, measured in the same run. */
  baseline?: { name: string; value: number; p99?: number };
}

/** A target an issue set, checked on a figure of this run (never by a test). */
export interface Target {
  issue: number;
  /** e.g. "scale → every node programmed, p99 ≤ 300 ms". */
  what: string;
  /** The figure it is checked on, formatted, e.g. "212 ms". */
  figure: string;
  met: boolean;
  /** Where missed: why, and what would fix it. */
  why?: string;
}

/** A line chart: y against x per series (e.g. programming time against the number of services). */
export interface LineChart {
  kind: "line";
  /** File name under bench/report/, e.g. "rule-programming.svg". */
  file: string;
  title: string;
  x: { label: string; log?: boolean };
  y: { label: string; log?: boolean };
  series: { name: string; points: [x: number, y: number][] }[];
}

/** A bar chart: one bar per label (e.g. connections/s per path). */
export interface BarChart {
  kind: "bar";
  file: string;
  title: string;
  y: { label: string };
  bars: { label: string; value: number }[];
}

export type Chart = LineChart | BarChart;

/** One benchmark's part of the run. */
export interface BenchResult {
  /** Short name, the one `npm run bench -- NAME` takes. */
  name: string;
  title: string;
  /** What it measures and how, one paragraph of Markdown. */
  about: string;
  /** The command that runs it alone. */
  command: string;
  seconds: number;
  figures: Figure[];
  targets: Target[];
  charts: Chart[];
  /** Set when it failed: what it said. */
  error?: string;
  /** Things the reader must know to read the figures (e.g. "emulated: ratios only"). */
  notes?: string[];
}

export interface Machine {
  cpuModel: string;
  cpus: number;
  memGiB: number;
  kernel: string;
  os: string;
  node: string;
}

export interface SuiteResult {
  date: string;
  mode: "quick" | "default" | "full";
  machine: Machine;
  seconds: number;
  benches: BenchResult[];
}
