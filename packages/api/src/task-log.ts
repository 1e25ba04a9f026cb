// A task's log line, as vipmesh-confine writes it (confine.c, `emit`): the
// time its shim read the line, a stream tag, the text —
// `2024-05-01T12:00:00.123456789Z o hello` (o = stdout, e = stderr). The time
// is RFC 3339 in UTC with nanoseconds, fixed width (moby's RFC3339NanoFixed),
// so that times compare as strings. A line that is not in this form (a log
// from before the shim, confinement's own early failures) is "raw": stdout,
// with no time. The one parser of it: the agent (since), the Engine API
// (frames) and the CLI (printing) all read lines through here.

export type TaskLogStream = "stdout" | "stderr";

export interface TaskLogLine<T = string> {
  /** RFC 3339 UTC with nanoseconds, fixed width; "" for a raw line. */
  time: string;
  stream: TaskLogStream;
  /** The line's text, without its newline. */
  text: T;
}

/** `2024-05-01T12:00:00.123456789Z`. */
export const LOG_TIME_LENGTH = 30;
/** Time, space, tag, space. */
export const LOG_PREFIX_LENGTH = LOG_TIME_LENGTH + 3;
/** Longer lines are split into lines of this many bytes (as Docker's json-file does). */
export const LOG_LINE_MAX_BYTES = 16 * 1024;
const TAGS: Record<string, TaskLogStream> = { o: "stdout", e: "stderr" };
const TAG_OF: Record<TaskLogStream, string> = { stdout: "o", stderr: "e" };
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;

/** The prefix of a line (string or bytes, newline or not): its time, stream and where its text starts. */
function prefixOf(line: string | Buffer): { time: string; stream: TaskLogStream; start: number } {
  const head = typeof line === "string" ? line.slice(0, LOG_PREFIX_LENGTH) : line.subarray(0, LOG_PREFIX_LENGTH).toString("latin1");
  const stream = TAGS[head[LOG_TIME_LENGTH + 1] ?? ""];
  const time = head.slice(0, LOG_TIME_LENGTH);
  if (head.length < LOG_PREFIX_LENGTH || !stream || head[LOG_TIME_LENGTH] !== " " || head[LOG_TIME_LENGTH + 2] !== " " || !TIME.test(time)) {
    return { time: "", stream: "stdout", start: 0 };
  }
  return { time, stream, start: LOG_PREFIX_LENGTH };
}

/** Where a line's text ends: before its newline, if it has one. */
const textEnd = (line: string | Buffer): number =>
  line.length > 0 && (typeof line === "string" ? line.endsWith("\n") : line[line.length - 1] === 0x0a) ? line.length - 1 : line.length;

/** One line of a task's log (its newline, if any, is left out of the text). */
export function parseTaskLogLine(line: string): TaskLogLine {
  const { time, stream, start } = prefixOf(line);
  return { time, stream, text: line.slice(start, textEnd(line)) };
}

/** The same, for a line as bytes: the text stays bytes (output need not be UTF-8). */
export function parseTaskLogBytes(line: Buffer): TaskLogLine<Buffer> {
  const { time, stream, start } = prefixOf(line);
  return { time, stream, text: line.subarray(start, textEnd(line)) };
}

/** A log line as confine writes it (for stand-ins such as SimAgent). */
export const formatTaskLogLine = (time: string, stream: TaskLogStream, text: string): string => `${time} ${TAG_OF[stream]} ${text}\n`;

/** A time in the log's form; `nanos` (0–999999) adds to the Date's milliseconds. */
export const logTime = (d: Date, nanos = 0): string =>
  `${d.toISOString().slice(0, 19)}.${String(d.getUTCMilliseconds() * 1_000_000 + nanos).padStart(9, "0")}Z`;

/**
 * Docker's `since`, as the docker CLI sends it (unix seconds, with an
 * optional fraction: `1714564800.123456789`) or as RFC 3339, in the log's
 * time form; "" for "" or "0" (no filter); undefined when it is neither.
 */
export function sinceTime(since: string): string | undefined {
  const s = since.trim();
  if (s === "" || s === "0") return "";
  const unix = /^(\d+)(?:\.(\d{1,9}))?$/.exec(s);
  if (unix) {
    const nanos = (unix[2] ?? "").padEnd(9, "0");
    const d = new Date(Number(unix[1]) * 1000 + Number(nanos.slice(0, 3)));
    return Number.isNaN(d.getTime()) ? undefined : logTime(d, Number(nanos.slice(3)));
  }
  if (TIME.test(s)) return s;
  if (!/^\d{4}-\d\d-\d\dT/.test(s)) return undefined;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? undefined : logTime(d);
}

/** Whether a line is as recent as `since` (a time in the log's form; "" keeps every line). A raw line has no time: older than any. */
export const isSince = (line: Pick<TaskLogLine<unknown>, "time">, since: string): boolean => since === "" || line.time >= since;
