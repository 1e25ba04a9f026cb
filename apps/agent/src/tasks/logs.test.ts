import { appendFileSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir, waitFor } from "@vipmesh/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { LogPiece } from "@vipmesh/api";
import { readLog, serveLogRequest, tailOffset } from "./logs.ts";

let dir: ReturnType<typeof tempDir>;
let file: string;
beforeEach(() => {
  dir = tempDir("vipmesh-logs-");
  file = join(dir.path, "log");
});
afterEach(() => dir.remove());

const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}\n`).join("");

/** Collects what readLog sends, chunk by chunk. */
function collector() {
  const chunks: Buffer[] = [];
  return { chunks, send: (b: Buffer) => void chunks.push(b), text: () => Buffer.concat(chunks).toString() };
}

describe("tailOffset", () => {
  const tail = async (content: string, n: number, blockBytes?: number) => {
    writeFileSync(file, content);
    return content.slice(await tailOffset(file, n, blockBytes));
  };

  it("finds where the last lines start, the final newline ending the last line", async () => {
    expect(await tail("a\nb\nc\n", 2)).toBe("b\nc\n");
    expect(await tail("a\nb\nc\n", 1)).toBe("c\n");
  });

  it("counts an unfinished last line as a line", async () => {
    expect(await tail("a\nb\nc", 1)).toBe("c");
    expect(await tail("a\nb\nc", 2)).toBe("b\nc");
  });

  it("gives everything when the file has fewer lines, and 0 for a missing file", async () => {
    expect(await tail("a\nb\n", 5)).toBe("a\nb\n");
    expect(await tail("\n\n", 1)).toBe("\n");
    expect(await tailOffset(join(dir.path, "nosuch"), 3)).toBe(0);
  });

  it("reads backwards across blocks", async () => {
    expect(await tail(lines(1, 100), 7, 5)).toBe(lines(94, 100));
  });
});

describe("readLog", () => {
  it("sends a whole log in chunks of at most 64 KiB, each of whole lines", async () => {
    const content = lines(1, 20_000); // ~200 KiB
    writeFileSync(file, content);
    const c = collector();
    await readLog(file, { tail: 0, follow: false }, c.send);
    expect(c.chunks.length).toBe(4);
    for (const chunk of c.chunks) {
      expect(chunk.length).toBeLessThanOrEqual(65536);
      expect(chunk.at(-1)).toBe(0x0a);
    }
    expect(c.text()).toBe(content);
  });

  it("sends a line longer than a chunk in pieces", async () => {
    writeFileSync(file, `${"x".repeat(25)}\nend\n`);
    const c = collector();
    await readLog(file, { tail: 0, follow: false, chunkBytes: 10 }, c.send);
    expect(c.chunks.map((b) => b.toString())).toEqual(["xxxxxxxxxx", "xxxxxxxxxx", "xxxxx\nend\n"]);
  });

  it("reads log.1 before log, and counts tail across both", async () => {
    writeFileSync(`${file}.1`, lines(1, 5));
    writeFileSync(file, lines(6, 8));
    for (const [tail, from] of [[0, 1], [2, 7], [3, 6], [5, 4], [100, 1]] as const) {
      const c = collector();
      await readLog(file, { tail, follow: false }, c.send);
      expect(c.text()).toBe(lines(from, 8));
    }
  });

  it("sends only lines logged since a time, after tail, raw lines counting as older", async () => {
    const at = (s: number, text: string, stream = "o") => `2024-05-01T12:00:0${s}.000000000Z ${stream} ${text}\n`;
    writeFileSync(`${file}.1`, `raw\n${at(1, "a")}${at(2, "b", "e")}`);
    writeFileSync(file, `${at(3, "c")}${at(4, "d")}`);
    const read = async (since: string, tail = 0) => {
      const c = collector();
      await readLog(file, { tail, follow: false, since }, c.send);
      return c.text();
    };
    expect(await read("2024-05-01T12:00:02.000000000Z")).toBe(at(2, "b", "e") + at(3, "c") + at(4, "d"));
    expect(await read("2024-05-01T12:00:03.500000000Z")).toBe(at(4, "d"));
    expect(await read("2024-05-01T12:00:02.000000000Z", 1)).toBe(at(4, "d"));
    expect(await read("")).toBe(`raw\n${at(1, "a")}${at(2, "b", "e")}${at(3, "c")}${at(4, "d")}`);
  });

  it("with follow, goes on across a rotation: the rest of the old log, then the new one", async () => {
    writeFileSync(file, lines(1, 2));
    const c = collector();
    const abort = new AbortController();
    const reading = readLog(file, { tail: 0, follow: true, pollMs: 10 }, c.send, abort.signal);
    await waitFor("the first lines", () => c.text() === lines(1, 2));
    // as confine rotates: more in the old file, renamed, then a new file
    appendFileSync(file, lines(3, 3));
    renameSync(file, `${file}.1`);
    writeFileSync(file, lines(4, 5));
    await waitFor("the lines of both", () => c.text() === lines(1, 5));
    appendFileSync(file, lines(6, 6));
    await waitFor("the new log's next line", () => c.text() === lines(1, 6));
    abort.abort();
    await reading;
  });

  it("with follow, holds an unfinished line back until it ends, or the log cannot grow", async () => {
    writeFileSync(file, "a\nhal");
    let growing = true;
    const c = collector();
    const reading = readLog(file, { tail: 0, follow: true, pollMs: 10, growing: () => growing }, c.send);
    await waitFor("the whole line", () => c.text() === "a\n");
    appendFileSync(file, "f\nend");
    await waitFor("the finished line", () => c.text() === "a\nhalf\n");
    growing = false;
    await reading;
    expect(c.text()).toBe("a\nhalf\nend");
  });

  it("sends only the last lines with tail", async () => {
    writeFileSync(file, lines(1, 10));
    const c = collector();
    await readLog(file, { tail: 3, follow: false }, c.send);
    expect(c.text()).toBe(lines(8, 10));
  });

  it("sends nothing for a log that does not exist", async () => {
    const c = collector();
    await readLog(file, { tail: 0, follow: false }, c.send);
    expect(c.chunks).toEqual([]);
  });

  it("with follow, picks up lines appended later, until aborted", async () => {
    writeFileSync(file, lines(1, 3));
    const c = collector();
    const abort = new AbortController();
    const reading = readLog(file, { tail: 2, follow: true, pollMs: 10 }, c.send, abort.signal);
    await waitFor("the tail", () => c.text() === lines(2, 3));
    appendFileSync(file, lines(4, 5));
    await waitFor("the appended lines", () => c.text() === lines(2, 5));
    abort.abort();
    await reading;
    appendFileSync(file, lines(6, 6));
    expect(c.text()).toBe(lines(2, 5));
  });

  it("with follow, waits for a log that does not exist yet", async () => {
    const c = collector();
    const abort = new AbortController();
    const reading = readLog(file, { tail: 10, follow: true, pollMs: 10 }, c.send, abort.signal);
    writeFileSync(file, lines(1, 2));
    await waitFor("the new file's lines", () => c.text() === lines(1, 2));
    abort.abort();
    await reading;
  });

  it("with follow, ends once the log cannot grow, after sending what was written before", async () => {
    writeFileSync(file, lines(1, 1));
    let growing = true;
    const c = collector();
    const reading = readLog(file, { tail: 0, follow: true, pollMs: 10, growing: () => growing }, c.send);
    await waitFor("the first line", () => c.text() === lines(1, 1));
    appendFileSync(file, lines(2, 2));
    growing = false;
    await reading;
    expect(c.text()).toBe(lines(1, 2));
  });

  it("with follow, starts over when the log is replaced by a shorter one", async () => {
    writeFileSync(file, lines(1, 5));
    const c = collector();
    const abort = new AbortController();
    const reading = readLog(file, { tail: 0, follow: true, pollMs: 10 }, c.send, abort.signal);
    await waitFor("the first log", () => c.text() === lines(1, 5));
    writeFileSync(file, "new\n");
    await waitFor("the new log", () => c.text() === lines(1, 5) + "new\n");
    abort.abort();
    await reading;
  });
});

describe("serveLogRequest", () => {
  const source = (growing: (taskId: string) => boolean = () => false) => ({
    logFile: (taskId: string) => join(dir.path, taskId, "log"),
    growing,
  });
  const writeLog = (taskId: string, text: string) => {
    mkdirSync(join(dir.path, taskId), { recursive: true });
    appendFileSync(join(dir.path, taskId, "log"), text);
  };
  /** Each task's text and how its part ended. */
  const byTask = (pieces: LogPiece[]) => {
    const out: Record<string, { text: string; eof: number; error?: string }> = {};
    for (const p of pieces) {
      const t = (out[p.taskId] ??= { text: "", eof: 0 });
      if (t.eof) throw new Error(`a piece of ${p.taskId} after its eof`);
      if (p.data) t.text += p.data.toString();
      if (p.eof) t.eof++;
      if (p.error) t.error = p.error;
    }
    return out;
  };

  it("sends each task's log and ends each with eof; a task without a log just ends", async () => {
    writeLog("t1", lines(1, 3));
    writeLog("t2", lines(10, 11));
    const pieces: LogPiece[] = [];
    await serveLogRequest({ taskIds: ["t1", "t2", "t3"], follow: false, tail: 2 }, source(), (p) => void pieces.push(p));
    expect(byTask(pieces)).toEqual({
      t1: { text: lines(2, 3), eof: 1 },
      t2: { text: lines(10, 11), eof: 1 },
      t3: { text: "", eof: 1 },
    });
  });

  it("passes since on", async () => {
    writeLog("t1", "2024-05-01T12:00:01.000000000Z o old\n2024-05-01T12:00:02.000000000Z e new\n");
    const pieces: LogPiece[] = [];
    await serveLogRequest({ taskIds: ["t1"], follow: false, tail: 0, since: "2024-05-01T12:00:02.000000000Z" }, source(), (p) => void pieces.push(p));
    expect(byTask(pieces).t1).toEqual({ text: "2024-05-01T12:00:02.000000000Z e new\n", eof: 1 });
  });

  it("says why a log cannot be read", async () => {
    mkdirSync(join(dir.path, "t1", "log"), { recursive: true }); // a directory where the file should be
    const pieces: LogPiece[] = [];
    await serveLogRequest({ taskIds: ["t1"], follow: false, tail: 0 }, source(), (p) => void pieces.push(p));
    expect(byTask(pieces).t1).toMatchObject({ eof: 1, error: expect.stringContaining("cannot read the log of task t1") });
  });

  it("with follow, sends no eof when aborted", async () => {
    writeLog("t1", "hello\n");
    const pieces: LogPiece[] = [];
    const abort = new AbortController();
    const serving = serveLogRequest(
      { taskIds: ["t1"], follow: true, tail: 0 },
      source(() => true),
      (p) => void pieces.push(p),
      abort.signal,
      { pollMs: 10 },
    );
    await waitFor("the log", () => pieces.length === 1);
    abort.abort();
    await serving;
    expect(byTask(pieces)).toEqual({ t1: { text: "hello\n", eof: 0 } });
  });
});
