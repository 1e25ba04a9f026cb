// Task processes: each runs inside its sandbox's network namespace and a UTS
// namespace of its own (hostname = the short task ID), detached from the agent
// so that it survives an agent restart. Its pid and start time are kept in the
// state dir: a restarted agent adopts the processes that are still its own.
// A forgotten task's log stays a while, for `vipmesh service logs` of tasks
// that ended: the newest KEPT_ENDED_LOGS are kept.

import type { CheckRun, ExitReport, Runtime, StartSpec } from "./runtime.ts";
import { spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** How many logs of forgotten tasks are kept (the manager keeps 5 ended tasks per slot). */
export const KEPT_ENDED_LOGS = 50;

interface Tracked {
  pid: number;
  startTime: string;
  exited: boolean;
}

export interface ProcessRunnerOptions {
  stateDir: string;
  /** Put first on the task's PATH, so that `vipmesh` is found inside. */
  binDir: string;
  stopGraceMs: number;
}

/** /proc/PID/stat field 22: when the process started, to tell it from a later process with the same pid. */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

export class ProcessRunner extends EventEmitter<{ exit: [ExitReport] }> implements Runtime {
  private readonly tracked = new Map<string, Tracked>();
  private poll: NodeJS.Timeout | undefined;

  constructor(private readonly options: ProcessRunnerOptions) {
    super();
    mkdirSync(this.dir, { recursive: true });
  }

  private get dir(): string {
    return join(this.options.stateDir, "tasks");
  }

  logFile(taskId: string): string {
    return join(this.dir, taskId, "log");
  }

  /**
   * Takes over the processes a previous agent started: those still running
   * are adopted; those that ended meanwhile are `lost` (known, and exited).
   */
  adopt(): { adopted: string[]; lost: string[] } {
    const adopted: string[] = [];
    const lost: string[] = [];
    for (const taskId of readdirSync(this.dir)) {
      let pid: string | undefined;
      let startTime: string | undefined;
      try {
        [pid, startTime] = readFileSync(join(this.dir, taskId, "pid"), "utf8").trim().split(" ");
      } catch {
        continue;
      }
      const alive = startTimeOf(Number(pid)) === startTime;
      this.tracked.set(taskId, { pid: Number(pid), startTime: startTime ?? "", exited: !alive });
      (alive ? adopted : lost).push(taskId);
    }
    // adopted processes are not our children: notice their end by polling
    this.poll = setInterval(() => {
      for (const [taskId, t] of this.tracked) {
        if (!t.exited && startTimeOf(t.pid) !== t.startTime) this.exited(taskId, null, null);
      }
    }, 500).unref();
    return { adopted, lost };
  }

  isRunning(taskId: string): boolean {
    const t = this.tracked.get(taskId);
    return t !== undefined && !t.exited;
  }

  known(): string[] {
    return [...this.tracked.keys()];
  }

  start(spec: StartSpec): Promise<void> {
    const taskDir = join(this.dir, spec.taskId);
    mkdirSync(taskDir, { recursive: true });
    const log = openSync(this.logFile(spec.taskId), "a");
    const env: Record<string, string> = {
      PATH: `${this.options.binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: "/root",
      HOSTNAME: spec.hostname,
      ...Object.fromEntries(spec.env.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)])),
      VIPMESH_TASK_ID: spec.taskId,
      VIPMESH_SERVICE: spec.serviceName,
    };
    // ip netns exec → unshare → sh → exec: the pid we get is the task's own process in the end
    const child = spawn(
      "ip",
      ["netns", "exec", spec.sandbox, "unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', spec.hostname, ...spec.command],
      { detached: true, stdio: ["ignore", log, log], env },
    );
    closeSync(log);
    return new Promise((resolve, reject) => {
      child.once("error", reject);
      child.once("spawn", () => {
        const pid = child.pid!;
        const startTime = startTimeOf(pid) ?? "";
        writeFileSync(join(taskDir, "pid"), `${pid} ${startTime}\n`);
        this.tracked.set(spec.taskId, { pid, startTime, exited: false });
        child.once("exit", (code, signal) => this.exited(spec.taskId, code, signal));
        child.unref();
        resolve();
      });
    });
  }

  private exited(taskId: string, code: number | null, signal: string | null): void {
    const t = this.tracked.get(taskId);
    if (!t || t.exited) return;
    t.exited = true;
    this.emit("exit", { taskId, code, signal });
  }

  /** SIGTERM to the task's process group, SIGKILL after the grace period. */
  async stop(taskId: string): Promise<void> {
    const t = this.tracked.get(taskId);
    if (t && !t.exited) {
      const signal = (sig: NodeJS.Signals) => {
        try {
          process.kill(-t.pid, sig);
        } catch {
          try {
            process.kill(t.pid, sig);
          } catch {}
        }
      };
      signal("SIGTERM");
      const deadline = Date.now() + this.options.stopGraceMs;
      while (startTimeOf(t.pid) === t.startTime && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (startTimeOf(t.pid) === t.startTime) signal("SIGKILL");
      t.exited = true;
    }
  }

  /** Forgets a task: its pid file goes; its log stays until it is among the oldest of the forgotten. */
  forget(taskId: string): void {
    this.tracked.delete(taskId);
    rmSync(join(this.dir, taskId, "pid"), { force: true });
    const forgotten = readdirSync(this.dir)
      .filter((id) => !this.tracked.has(id) && !existsSync(join(this.dir, id, "pid")))
      .map((id) => ({ id, mtime: statSync(join(this.dir, id)).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    for (const { id } of forgotten.slice(KEPT_ENDED_LOGS)) rmSync(join(this.dir, id), { recursive: true, force: true });
  }

  /** `sh -c TEST` in the task's sandbox, killed at its timeout. */
  check(run: CheckRun): Promise<boolean> {
    return new Promise((resolve) => {
      const child = spawn("ip", ["netns", "exec", run.sandbox, "sh", "-c", run.test.join(" ")], { stdio: "ignore" });
      const timer = setTimeout(() => child.kill("SIGKILL"), run.timeoutMs);
      child.once("error", () => resolve(false));
      child.once("exit", (code) => {
        clearTimeout(timer);
        resolve(code === 0);
      });
    });
  }

  close(): void {
    clearInterval(this.poll);
  }
}
