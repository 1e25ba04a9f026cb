import { describe, expect, it } from "vitest";
import { ProgressPrinter, progressSummary } from "./convergence.ts";
import type { Io } from "./io.ts";

const convergence = {
  desiredTasks: 3,
  runningTasks: 2,
  nodesTotal: 3,
  nodesAcked: 3,
  converged: false,
  failed: false,
  updateState: "",
  message: "",
};

function captureIo(interactive: boolean): Io & { err: string[] } {
  const err: string[] = [];
  return { err, stdout: () => {}, stderr: (t) => err.push(t), env: {}, interactive, now: () => new Date(0), labs: () => new Map() };
}

describe("progressSummary", () => {
  it("counts tasks and nodes", () => {
    expect(progressSummary(convergence)).toBe("2/3 tasks running, 3/3 nodes applied");
  });

  it("adds the update state and the manager's message", () => {
    expect(progressSummary({ ...convergence, updateState: "rollback_started", message: "task exited" })).toBe(
      "2/3 tasks running, 3/3 nodes applied, rolling back (task exited)",
    );
  });
});

describe("ProgressPrinter", () => {
  it("prints each new line once when not on a terminal", () => {
    const io = captureIo(false);
    const p = new ProgressPrinter(io);
    p.show("a");
    p.show("a");
    p.show("b");
    p.end();
    expect(io.err).toEqual(["a\n", "b\n"]);
  });

  it("rewrites one line on a terminal and ends it with a newline", () => {
    const io = captureIo(true);
    const p = new ProgressPrinter(io);
    p.show("a");
    p.show("b");
    p.end();
    expect(io.err).toEqual(["\r\x1b[2Ka", "\r\x1b[2Kb", "\n"]);
  });
});
