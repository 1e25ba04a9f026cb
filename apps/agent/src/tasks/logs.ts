// Task logs for `vipmesh service logs`: read a task's log file (all of it, or
// its last lines), in chunks, and with follow keep polling it for more until
// the caller stops or the log cannot grow. Polling rather than fs.watch: it
// needs nothing from the file system, and a log that does not exist yet (the
// task has not started) or is replaced is just read from its start.

import { type FileHandle, open, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { LogPiece, LogRequest } from "@vipmesh/api";

/** The largest piece of a log sent at once (the session carries it as one message). */
export const LOG_CHUNK_BYTES = 64 * 1024;
export const LOG_POLL_MS = 200;

export interface LogReadOptions {
  /** Only the last `tail` lines; 0 = all. */
  tail: number;
  follow: boolean;
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
 * does not exist). A last line without its newline counts as a line.
 */
export async function tailOffset(file: string, lines: number, blockBytes = LOG_CHUNK_BYTES): Promise<number> {
  const size = await sizeOf(file);
  if (!size || lines <= 0) return 0;
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
        if (block[i] === NEWLINE && ++seen === lines) return start + i + 1;
      }
      end = start;
    }
    return 0;
  } finally {
    await fh.close();
  }
}

/** Sends what the file holds from `offset` on, in chunks; returns the offset after it. */
async function sendFrom(
  file: string,
  offset: number,
  chunkBytes: number,
  send: (data: Buffer) => void | Promise<void>,
  signal: AbortSignal | undefined,
): Promise<number> {
  const size = await sizeOf(file);
  if (size === undefined || size === offset) return offset;
  if (size < offset) offset = 0; // truncated or replaced: start over
  let fh: FileHandle;
  try {
    fh = await open(file, "r");
  } catch (err) {
    if (isMissing(err)) return offset;
    throw err;
  }
  try {
    for (;;) {
      if (signal?.aborted) return offset;
      // a fresh buffer per chunk: the receiver may keep it
      const { bytesRead, buffer } = await fh.read(Buffer.alloc(chunkBytes), 0, chunkBytes, offset);
      if (bytesRead === 0) return offset;
      offset += bytesRead;
      await send(bytesRead === chunkBytes ? buffer : buffer.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
}

/**
 * Sends a log file's content to `send`, in chunks of at most `chunkBytes`,
 * awaiting each send. Without follow it resolves once everything is sent;
 * with follow once the log cannot grow any more, or when `signal` aborts.
 */
export async function readLog(
  file: string,
  options: LogReadOptions,
  send: (data: Buffer) => void | Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const chunkBytes = options.chunkBytes ?? LOG_CHUNK_BYTES;
  let offset = await tailOffset(file, options.tail);
  for (;;) {
    // asked before reading: what was written before it said "no more" is still read
    const growing = options.follow && (options.growing?.() ?? true);
    offset = await sendFrom(file, offset, chunkBytes, send, signal);
    if (!growing || signal?.aborted) return;
    try {
      await sleep(options.pollMs ?? LOG_POLL_MS, undefined, { signal });
    } catch {
      return; // aborted
    }
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
          { ...options, tail: req.tail, follow: req.follow, growing: () => source.growing(taskId) },
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
