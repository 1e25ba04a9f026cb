// `npm run bench`: runs every benchmark (or those named), one after another,
// and regenerates BENCHMARKS.md with its charts (bench/report/*.svg) and the
// data behind them (bench/report/last.json; a --full run also
// bench/report/last-full.json, whose 30k figures later reports keep).
//
//   npm run bench -- [NAME ...] [--quick | --full]      (as root: most benchmarks use namespaces)
//   npm run bench -- --report      (no run: BENCHMARKS.md again from the last run's result files, read by today's code)
//
// Names: the `name`s in benches.ts. --quick: small sizes, no VM, in about
// 3 minutes; by default peers run at 1k and 10k services (about 15 minutes);
// --full adds 30k. Each benchmark's own output goes to
// bench/results/<name>.log; a failed one is reported as failed, the rest still run.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, freemem, release, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { BENCHES, readResult, resultFile, type Bench, type Mode } from "./benches.ts";
import type { BenchResult, Machine, SuiteResult } from "./model.ts";
import { renderReport } from "./report.ts";
import { renderChart } from "./svg.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");
const REPORT_DIR = `${ROOT}/bench/report`;
const LAST = `${REPORT_DIR}/last.json`;
const LAST_FULL = `${REPORT_DIR}/last-full.json`;

const args = process.argv.slice(2);
const mode: Mode = args.includes("--full") ? "full" : args.includes("--quick") ? "quick" : "default";
const names = args.filter((a) => !a.startsWith("--"));
const unknown = names.filter((n) => !BENCHES.some((b) => b.name === n));
if (unknown.length > 0 || args.includes("--help")) {
  console.error(`${unknown.length ? `unknown benchmark: ${unknown.join(", ")}\n` : ""}usage: npm run bench -- [NAME ...] [--quick | --full]\nnames: ${BENCHES.map((b) => b.name).join(", ")}`);
  process.exit(unknown.length ? 2 : 0);
}
const selected = names.length > 0 ? BENCHES.filter((b) => names.includes(b.name)) : BENCHES;

const t0 = Date.now();
const clock = (ms: number) => `${Math.floor(ms / 60_000)}:${String(Math.floor(ms / 1000) % 60).padStart(2, "0")}`;
const tty = process.stderr.isTTY;

/** Runs one invocation, its output appended to `log`; a progress line meanwhile. Resolves to its exit code. */
function runOne(label: string, script: string, scriptArgs: string[], log: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", `bench/${script}`, ...scriptArgs], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let lastLine = "";
    const take = (d: Buffer) => {
      const text = d.toString();
      log.push(text);
      const line = text.split(/[\r\n]/).map((l) => l.trim()).filter(Boolean).at(-1);
      if (line) lastLine = line;
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    const tick = setInterval(() => {
      const text = `${label} ${clock(Date.now() - t0)} ${lastLine}`.slice(0, (process.stderr.columns || 120) - 1);
      if (tty) process.stderr.write(`\r\x1b[K${text}`);
    }, 500);
    const slow = tty ? undefined : setInterval(() => process.stderr.write(`${label} ${clock(Date.now() - t0)} ${lastLine.slice(0, 100)}\n`), 30_000);
    child.on("close", (code) => {
      clearInterval(tick);
      if (slow) clearInterval(slow);
      resolve(code ?? 1);
    });
  });
}

async function runBench(b: Bench, index: number): Promise<BenchResult> {
  const invocations = b.runs(mode);
  const started = Date.now();
  const base = { name: b.name, title: b.title, about: b.about, command: `npm run bench -- ${b.name}${mode === "default" ? "" : ` --${mode}`}` };
  if (invocations.length === 0) return { ...base, seconds: 0, figures: [], targets: [], charts: [], notes: [`not run with --${mode}`] };
  const log: string[] = [];
  let failed: string | undefined;
  for (const inv of invocations) {
    const label = `[${index + 1}/${selected.length}] ${b.name}`;
    const code = await runOne(label, inv.script, inv.args, log);
    if (code !== 0) {
      failed = `bench/${inv.script} ${inv.args.join(" ")} exited ${code}:\n${log.join("").trim().split("\n").slice(-15).join("\n")}`;
      break;
    }
  }
  mkdirSync(resultFile("").pathname, { recursive: true });
  writeFileSync(resultFile(`${b.name}.log`), log.join(""));
  const seconds = Math.round((Date.now() - started) / 1000);
  if (tty) process.stderr.write("\r\x1b[K");
  process.stderr.write(`[${index + 1}/${selected.length}] ${b.name}: ${failed ? "FAILED" : "done"} in ${seconds} s\n`);
  if (failed) return { ...base, seconds, figures: [], targets: [], charts: [], error: failed };
  try {
    return { ...base, seconds, ...b.summarize(readResult, mode) };
  } catch (err) {
    return { ...base, seconds, figures: [], targets: [], charts: [], error: `its results could not be read: ${err instanceof Error ? err.message : String(err)}` };
  }
}

function machine(): Machine {
  const os = existsSync("/etc/os-release") ? /^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] : undefined;
  return { cpuModel: cpus()[0]?.model ?? "?", cpus: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), kernel: release(), os: os ?? "Linux", node: process.version };
}

const readRun = (file: string): SuiteResult | undefined => (existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as SuiteResult) : undefined);

/** BENCHMARKS.md and the charts from `run`, with the last full run's 30k figures when `run` is not one. */
function writeReport(run: SuiteResult): void {
  mkdirSync(REPORT_DIR, { recursive: true });
  for (const chart of run.benches.flatMap((b) => b.charts)) writeFileSync(`${REPORT_DIR}/${chart.file}`, renderChart(chart));
  writeFileSync(`${ROOT}/BENCHMARKS.md`, renderReport(run, run.mode === "full" ? undefined : readRun(LAST_FULL)));
}

/**
 * The last run again from the result files it left in bench/results/, read by today's registry
 * (its texts, targets and reasons; a bench whose files are gone keeps what was saved).
 */
function reread(run: SuiteResult): SuiteResult {
  return {
    ...run,
    benches: run.benches.map((b) => {
      const bench = BENCHES.find((x) => x.name === b.name);
      if (!bench || b.error || b.figures.length === 0) return b;
      try {
        return { ...b, title: bench.title, about: bench.about, ...bench.summarize(readResult, run.mode) };
      } catch {
        return b;
      }
    }),
  };
}

async function main(): Promise<void> {
  if (args.includes("--report")) {
    const saved = readRun(LAST);
    if (!saved) throw new Error(`no ${LAST}: run the benchmarks first`);
    const last = reread(saved);
    writeFileSync(LAST, `${JSON.stringify(last, null, 2)}\n`);
    if (last.mode === "full") writeFileSync(LAST_FULL, `${JSON.stringify(last, null, 2)}\n`);
    writeReport(last);
    process.stderr.write("BENCHMARKS.md written again from bench/results/ and bench/report/last.json\n");
    return;
  }
  if (process.getuid?.() !== 0) throw new Error("the benchmarks use network namespaces: run as root");
  process.stderr.write(`vipmesh benchmarks (${mode}): ${selected.map((b) => b.name).join(", ")}; ${Math.round(freemem() / 2 ** 30)} GiB free\n`);
  const benches: BenchResult[] = [];
  for (const [i, b] of selected.entries()) benches.push(await runBench(b, i));
  // a run of some benchmarks only: the others keep their last figures
  const previous = names.length > 0 ? readRun(LAST) : undefined;
  const kept = (previous?.benches ?? []).filter((p) => !benches.some((b) => b.name === p.name));
  const all = BENCHES.flatMap((b) => [...benches, ...kept].filter((x) => x.name === b.name));
  // the whole suite's time, those kept from the last run included
  const run: SuiteResult = { date: new Date().toISOString(), mode, machine: machine(), seconds: all.reduce((n, b) => n + b.seconds, 0), benches: all };
  mkdirSync(REPORT_DIR, { recursive: true });
  writeFileSync(LAST, `${JSON.stringify(run, null, 2)}\n`);
  if (mode === "full") writeFileSync(LAST_FULL, `${JSON.stringify(run, null, 2)}\n`);
  writeReport(run);
  const targets = run.benches.flatMap((b) => b.targets);
  const failed = benches.filter((b) => b.error);
  process.stderr.write(
    `\nBENCHMARKS.md written in ${clock(Date.now() - t0)}: ${targets.filter((t) => t.met).length} of ${targets.length} targets met` +
      `${failed.length ? `; FAILED: ${failed.map((b) => b.name).join(", ")} (bench/results/<name>.log)` : ""}\n`,
  );
  for (const t of targets) process.stderr.write(`  ${t.met ? "met    " : "MISSED "} #${t.issue} ${t.what}: ${t.figure}\n`);
  process.exitCode = failed.length > 0 ? 1 : 0;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
