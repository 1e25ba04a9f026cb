// Kernel test: a confined task's log as confine's shim writes it — both
// streams, each line timed, long lines split, the cap (log → log.1) — and
// the exit status and signal forwarding the shim's loop took over from
// sigwaitinfo. Root and a network namespace of its own; run under
// `flock /tmp/vipmesh-kernel.lock`.

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { effectiveCapabilities } from "@vipmesh/core";
import { parseTaskLogLine, type TaskLogLine } from "@vipmesh/api";
import { tempDir, waitFor } from "@vipmesh/testing";
import { kernelDescribe } from "@vipmesh/testing/kernel";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { ExitReport } from "./runtime.ts";
import { ProcessRunner } from "./process-runner.ts";

const NETNS = `vmlog-${process.pid}`;
const CAP = 256 * 1024;

kernelDescribe("confine's log shim", () => {
  let dir: ReturnType<typeof tempDir>;
  let runner: ProcessRunner;
  const exits = new Map<string, ExitReport>();

  beforeAll(() => {
    execFileSync("ip", ["netns", "add", NETNS]);
    dir = tempDir("vipmesh-confine-log-");
    runner = new ProcessRunner({ stateDir: dir.path, binDir: "/nonexistent", stopGraceMs: 2000, logMaxBytes: CAP });
    runner.on("exit", (e) => exits.set(e.taskId, e));
  });
  afterAll(() => {
    runner?.close();
    execFileSync("ip", ["netns", "del", NETNS]);
    dir?.remove();
  });

  const start = (taskId: string, script: string) =>
    runner.start({
      taskId,
      serviceName: "logs",
      sandbox: NETNS,
      hostname: taskId,
      command: ["sh", "-c", script],
      env: [],
      container: { command: ["sh", "-c", script], env: [] },
      confinement: { user: "", capabilities: effectiveCapabilities(), pids: 4096, memoryBytes: 0, nanoCpus: 0 },
    });
  const exited = (taskId: string) => waitFor(`${taskId} to exit`, () => exits.get(taskId), 20_000);
  const linesOf = (file: string): TaskLogLine[] =>
    existsSync(file) ? readFileSync(file, "utf8").split(/(?<=\n)/).map(parseTaskLogLine) : [];

  it("logs stdout and stderr apart, each line with its time, in order; the task's status is the outer's", async () => {
    await start("streams", "echo out1; sleep 0.05; echo err1 >&2; sleep 0.05; echo out2; printf unfinished; exit 3");
    expect(await exited("streams")).toMatchObject({ code: 3 });
    const lines = linesOf(runner.logFile("streams"));
    expect(lines.map((l) => [l.stream, l.text])).toEqual([
      ["stdout", "out1"],
      ["stderr", "err1"],
      ["stdout", "out2"],
      ["stdout", "unfinished"],
    ]);
    const times = lines.map((l) => l.time);
    expect(times.every((t) => t !== "")).toBe(true);
    expect(times[1]! > times[0]! && times[2]! > times[1]!).toBe(true); // 50 ms apart
    expect(times[3]! >= times[2]!).toBe(true);
    const first = Date.parse(times[0]!);
    expect(Math.abs(Date.now() - first)).toBeLessThan(10_000);
  });

  it("splits a line longer than 16 KiB", async () => {
    await start("long", "head -c 40000 /dev/zero | tr '\\0' x");
    expect(await exited("long")).toMatchObject({ code: 0 });
    expect(linesOf(runner.logFile("long")).map((l) => l.text.length)).toEqual([16384, 16384, 40000 - 2 * 16384]);
  });

  it("keeps a task writing 3 × the cap to log and log.1, each within the cap, the newest lines in log", async () => {
    // 20,000 lines of 10 characters: 860 KB in the log's form
    await start("flood", "yes abcdefghi | head -n 20000; echo last");
    expect(await exited("flood")).toMatchObject({ code: 0 });
    const log = runner.logFile("flood");
    expect(statSync(log).size).toBeLessThanOrEqual(CAP);
    expect(statSync(`${log}.1`).size).toBeLessThanOrEqual(CAP);
    expect(statSync(`${log}.1`).size).toBeGreaterThan(CAP - 100);
    expect(existsSync(`${log}.2`)).toBe(false);
    const lines = [...linesOf(`${log}.1`), ...linesOf(log)];
    expect(lines.at(-1)).toMatchObject({ stream: "stdout", text: "last" });
    expect(lines.slice(0, -1).every((l) => l.text === "abcdefghi" && l.time !== "")).toBe(true);
    // the oldest went with the older log.1s; what is left is whole lines of 43 bytes
    expect(lines.length).toBeLessThan(20_000);
    expect(statSync(log).size + statSync(`${log}.1`).size).toBe(43 * lines.length - "abcdefghi".length + "last".length);
  });

  it("passes SIGTERM on to the task, which may handle it, and a task killed by it exits 143", async () => {
    await start("trap", 'trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.05; done');
    await start("plain", "echo ready; exec sleep 100");
    const pidOf = (taskId: string) => Number(readFileSync(join(dir.path, "tasks", taskId, "pid"), "utf8").split(" ")[0]);
    for (const taskId of ["trap", "plain"]) {
      await waitFor(`${taskId} ready`, () => linesOf(runner.logFile(taskId)).some((l) => l.text === "ready"), 20_000);
      process.kill(pidOf(taskId), "SIGTERM");
    }
    expect(await exited("trap")).toMatchObject({ code: 7 });
    // (sh also says on stderr that its sleep, in the task's process group, was terminated)
    expect(linesOf(runner.logFile("trap")).filter((l) => l.stream === "stdout").map((l) => l.text)).toEqual(["ready", "got TERM"]);
    expect(await exited("plain")).toMatchObject({ code: 143 });
  });
});
