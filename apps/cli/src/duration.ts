// Durations as people type them, Go/Docker style: 500ms, 5s, 1m, 1h30m, 1.5s.

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const TERM = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/;

/** Milliseconds, rounded to a whole number. */
export function parseDuration(text: string): number {
  const input = text.trim();
  if (input === "0") return 0;
  let rest = input;
  let total = 0;
  while (rest !== "") {
    const m = TERM.exec(rest);
    if (!m) break;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  if (input === "" || rest !== "") {
    throw new Error(`"${text}" is not a duration: use a number with a unit, like 500ms, 5s, 1m or 1h30m`);
  }
  return Math.round(total);
}

/** The inverse for messages: 120000 → "120s", 500 → "500ms". */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${ms / 1000}s`;
}
