// What the API benchmarks share: their numeric flags and a summary of timed samples.

/** `--name N` from the script's arguments, else `fallback`. */
export function numberFlag(name: string, fallback: number, args = process.argv.slice(2)): number {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
}

/** Count, p50, p99 and the largest of samples in ms; percentiles nearest-rank. */
export function summarize(samples: readonly number[]) {
  const s = [...samples].sort((a, b) => a - b);
  const rank = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? Number.NaN;
  return { n: s.length, p50Ms: rank(50), p99Ms: rank(99), maxMs: s.at(-1) ?? Number.NaN };
}

export const ms = (x: number): string => `${x.toFixed(1)} ms`;
