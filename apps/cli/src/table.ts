// Aligned text tables, as docker prints them.

const GAP = "   ";

/** Columns padded to their widest cell, separated by three spaces; no trailing blanks. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    headers
      .map((_, i) => (cells[i] ?? "").padEnd(widths[i]!))
      .join(GAP)
      .trimEnd();
  return [line(headers), ...rows.map(line)].map((l) => `${l}\n`).join("");
}

export const shortId = (id: string): string => id.slice(0, 12);

/** "running" → "Running", as docker's tables show states. */
export const titleCase = (word: string): string => (word ? word[0]!.toUpperCase() + word.slice(1) : word);

/** Docker's human duration (go-units HumanDuration), e.g. "3 seconds", "About a minute". */
export function humanDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.round(seconds / 60);
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(minutes / 60);
  if (hours === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  return `${Math.round(hours / 24)} days`;
}

/** "Running 3 seconds ago"; just the state when the timestamp is missing or unreadable. */
export function stateSince(state: string, timestamp: string, now: Date): string {
  const at = Date.parse(timestamp);
  if (!timestamp || Number.isNaN(at)) return titleCase(state);
  return `${titleCase(state)} ${humanDuration(Math.max(0, now.getTime() - at))} ago`;
}
