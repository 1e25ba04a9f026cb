import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "@vipmesh/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KEPT_ENDED_LOGS, ProcessRunner } from "./process-runner.ts";

let dir: ReturnType<typeof tempDir>;
beforeEach(() => {
  dir = tempDir("vipmesh-runner-");
});
afterEach(() => dir.remove());

describe("forget", () => {
  it("keeps the log of a forgotten task, and drops the oldest such logs beyond the limit", () => {
    const runner = new ProcessRunner({ stateDir: dir.path, binDir: "/nonexistent", stopGraceMs: 0 });
    const tasks = join(dir.path, "tasks");
    // logs of tasks forgotten earlier, one second apart: ended-0 is the oldest
    for (let i = 0; i < KEPT_ENDED_LOGS; i++) {
      mkdirSync(join(tasks, `ended-${i}`));
      writeFileSync(join(tasks, `ended-${i}`, "log"), `${i}\n`);
      utimesSync(join(tasks, `ended-${i}`), 1_000_000 + i, 1_000_000 + i);
    }
    mkdirSync(join(tasks, "t1"));
    writeFileSync(join(tasks, "t1", "pid"), "1 1\n");
    writeFileSync(join(tasks, "t1", "log"), "hello\n");

    runner.forget("t1");
    runner.close();

    expect(existsSync(join(tasks, "t1", "pid"))).toBe(false);
    expect(existsSync(join(tasks, "t1", "log"))).toBe(true);
    expect(existsSync(join(tasks, "ended-0"))).toBe(false);
    expect(existsSync(join(tasks, "ended-1", "log"))).toBe(true);
    expect(readdirSync(tasks)).toHaveLength(KEPT_ENDED_LOGS);
  });
});
