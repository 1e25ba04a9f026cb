// Task logs for `vipmesh service logs`: read a task's log (log.1, the one
// confine rotated away, then log: all of them, or their last lines, or those
// since a time), in chunks of whole lines, and with follow keep polling it for
// more — across a rotation, seen as a new inode at the log's path — until the
// caller stops or the log cannot grow. Polling rather than fs.watch: it needs
// nothing from the file system, and a log that does not exist yet (the task
// has not started) is just read from its start. Lines are task-log.ts's; this
// parses them only for `since`.

import { type FileHandle, open, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { isSince, type LogPiece, type LogRequest, parseTaskLogBytes } from "@vipmesh/api";

/** The largest piece of a log sent at once (the session carries it as one message). */
export const LOG_CHUNK_BYTES = 64 * 1024;
export const LOG_POLL_MS = 200;

export interface LogReadOptions {
  /** Only the last `tail` lines (of log.1 and log together); 0 = all. */
  tail: number;
  follow: boolean;
  /** Only lines logged at or after this time (task-log.ts's form); "" or absent = all. Applied after tail, as Docker does. */
  since?: string;
  /** With follow: whether the log can still grow. Once it cannot, the rest is read and the read ends. */
  growing?: () => boolean;
  pollMs?: number;
  chunkBytes?: number;
}
const NEWLINE = 0x0a;

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === "ENOENT";

async function sizeOf(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/**
 * Where the last `lines` lines of the file start (0 when it has fewer, or
 * does not exist), and how many of them it has. A last line without its
 * newline counts as a line.
 */
async function tailStart(file: string, lines: number, blockBytes = LOG_CHUNK_BYTES): Promise<{ offset: number; found: number }> {
  const size = await sizeOf(file);
  if (!size || lines <= 0) return { offset: 0, found: 0 };
  const fh = await open(file, "r");
  try {
    const block = Buffer.alloc(blockBytes);
    let end = size; // bytes before `end` are not scanned yet
    let skipLast = true; // the final newline ends the last line; it starts none
    let seen = 0;
    while (end > 0) {
      const start = Math.max(0, end - blockBytes);
      const { bytesRead } = await fh.read(block, 0, end - start, start);
      for (let i = bytesRead - 1; i >= 0; i--) {
        if (skipLast) {
          skipLast = false;
          if (block[i] === NEWLINE) continue;
        }
        if (block[i] === NEWLINE && ++seen === lines) return { offset: start + i + 1, found: lines };
      }
      end = start;
    }
    return { offset: 0, found: seen + 1 }; // the first line has no newline before it
  } finally {
    await fh.close();
  }
}

/** Where the last `lines` lines of the file start (0 when it has fewer, or does not exist). */
export const tailOffset = async (file: string, lines: number, blockBytes?: number): Promise<number> =>
  (await tailStart(file, lines, blockBytes)).offset;

/**
 * Cuts what is read into whole lines, drops those before `since`, and sends
 * the rest in chunks of at most `chunkBytes` that end at a line's end. A line
 * longer than a chunk (only a raw one can be: confine splits at 16 KiB) goes
 * in pieces.
 */
class LineSender {
  private carry: Buffer = Buffer.alloc(0);
  private out: Buffer[] = [];
  private outBytes = 0;

  constructor(
    private readonly chunkBytes: number,
    private readonly since: string,
    private readonly send: (data: Buffer) => void | Promise<void>,
  ) {}

  async push(data: Buffer): Promise<void> {
    const buf = this.carry.length > 0 ? Buffer.concat([this.carry, data]) : data;
    let start = 0;
    for (let nl = buf.indexOf(NEWLINE); nl >= 0; nl = buf.indexOf(NEWLINE, start)) {
      await this.line(buf.subarray(start, nl + 1));
      start = nl + 1;
    }
    this.carry = buf.subarray(start);
    if (this.carry.length >= this.chunkBytes) await this.endLine();
  }

  /** The unfinished line, as a line: its file ended (rotated, or cannot grow). */
  async endLine(): Promise<void> {
    const rest = this.carry;
    this.carry = Buffer.alloc(0);
    if (rest.length > 0) await this.line(rest);
  }

  /** What a reread from the start replaces. */
  dropLine(): void {
    this.carry = Buffer.alloc(0);
  }

  async flush(): Promise<void> {
    if (this.outBytes === 0) return;
    const data = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    await this.send(data);
  }

  private async line(line: Buffer): Promise<void> {
    if (this.since && !isSince(parseTaskLogBytes(line), this.since)) return;
    for (let at = 0; at < line.length; at += this.chunkBytes) {
      const piece = line.subarray(at, at + this.chunkBytes);
      if (this.outBytes + piece.length > this.chunkBytes) await this.flush();
      this.out.push(piece);
      this.outBytes += piece.length;
    }
  }
}

interface OpenLog {
  fh: FileHandle;
  ino: number;
  offset: number;
}

async function openLog(file: string, offset: number): Promise<OpenLog | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, "r");
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  const st = await fh.stat();
  return { fh, ino: st.ino, offset: Math.min(offset, st.size) };
}

async function statOf(file: string): Promise<{ ino: number; size: number } | undefined> {
  try {
    return await stat(file);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/** Reads an open log from its offset to its end into `lines`. */
async function readToEnd(log: OpenLog, chunkBytes: number, lines: LineSender, signal: AbortSignal | undefined): Promise<void> {
  for (;;) {
    if (signal?.aborted) return;
    // a fresh buffer per read: the receiver may keep what is sent of it
    const { bytesRead, buffer } = await log.fh.read(Buffer.alloc(chunkBytes), 0, chunkBytes, log.offset);
    if (bytesRead === 0) return;
    log.offset += bytesRead;
    await lines.push(buffer.subarray(0, bytesRead));
  }
}

/**
 * Sends a task's log (`file`, after `file`.1) to `send`, in chunks of whole
 * lines of at most `chunkBytes`, awaiting each send. Without follow it
 * resolves once everything is sent; with follow once the log cannot grow any
 * more, or when `signal` aborts.
 */
export async function readLog(
  file: string,
  options: LogReadOptions,
  send: (data: Buffer) => void | Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const chunkBytes = options.chunkBytes ?? LOG_CHUNK_BYTES;
  const lines = new LineSender(chunkBytes, options.since ?? "", send);
  const current = await tailStart(file, options.tail);
  if (options.tail === 0 || current.found < options.tail) {
    const older = await tailStart(`${file}.1`, options.tail === 0 ? 0 : options.tail - current.found);
    const log = await openLog(`${file}.1`, older.offset);
    if (log) {
      try {
        await readToEnd(log, chunkBytes, lines, signal);
        await lines.endLine();
      } finally {
        await log.fh.close();
      }
    }
  }
  let log = await openLog(file, current.offset);
  try {
    for (;;) {
      // asked before reading: what was written before it said "no more" is still read
      const growing = options.follow && (options.growing?.() ?? true);
      log ??= await openLog(file, 0);
      if (log) {
        await readToEnd(log, chunkBytes, lines, signal);
        const now = await statOf(file);
        if (now && now.ino !== log.ino) {
          // rotated: the rest of the old one (now log.1), then the new one from its start
          await readToEnd(log, chunkBytes, lines, signal);
          await lines.endLine();
          await log.fh.close();
          log = await openLog(file, 0);
          if (log) await readToEnd(log, chunkBytes, lines, signal);
        } else if (now && now.size < log.offset) {
          // truncated: start over
          lines.dropLine();
          log.offset = 0;
          await readToEnd(log, chunkBytes, lines, signal);
        }
      }
      if (signal?.aborted) return;
      if (!growing) await lines.endLine();
      await lines.flush();
      if (!growing || signal?.aborted) return;
      try {
        await sleep(options.pollMs ?? LOG_POLL_MS, undefined, { signal });
      } catch {
        return; // aborted
      }
    }
  } finally {
    await log?.fh.close();
  }
}

export interface TaskLogSource {
  logFile(taskId: string): string;
  /** Whether the task's log can still grow: its process runs, or may yet start. */
  growing(taskId: string): boolean;
}

/**
 * Answers one log request: each task's log, its pieces in order (tasks
 * interleave), each ended by an `eof` piece — unless `signal` aborted it.
 */
export async function serveLogRequest(
  req: LogRequest,
  source: TaskLogSource,
  send: (piece: LogPiece) => void | Promise<void>,
  signal?: AbortSignal,
  options: Pick<LogReadOptions, "pollMs" | "chunkBytes"> = {},
): Promise<void> {
  await Promise.all(
    req.taskIds.map(async (taskId) => {
      let error: string | undefined;
      try {
        await readLog(
          source.logFile(taskId),
          { ...options, tail: req.tail, follow: req.follow, since: req.since ?? "", growing: () => source.growing(taskId) },
          (data) => send({ taskId, data }),
          signal,
        );
      } catch (err) {
        error = `cannot read the log of task ${taskId}: ${err instanceof Error ? err.message : String(err)}`;
      }
      if (!signal?.aborted) await send(error === undefined ? { taskId, eof: true } : { taskId, eof: true, error });
    }),
  );
}
