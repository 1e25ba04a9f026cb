// Task processes: each runs confined (confine.c: its own PID, mount, IPC and
// UTS namespaces, read-only root, Docker's capabilities, seccomp, a cgroup)
// inside its sandbox's network namespace, detached from the agent so that it
// survives an agent restart. Its pid and start time are kept in the state
// dir: a restarted agent adopts the processes that are still its own. Health
// checks enter the task as confined as it is.
// A forgotten task's log stays a while, for `vipmesh service logs` of tasks
// that ended: the newest KEPT_ENDED_LOGS are kept.

import type { Confinement } from "@vipmesh/core";
import type { TaskCgroups } from "./cgroups.ts";
import { CONFINE, enterArgs, initUnder, runArgs, runEntered } from "./confine.ts";
import type { CheckRun, ExitReport, Runtime, StartSpec } from "./runtime.ts";
import { spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** A task's log: past this it becomes `log.1` (the older one goes) and a new `log` starts, so a task holds at most twice this on disk. */
export const TASK_LOG_MAX_BYTES = 10 * 1024 * 1024;

/** How many logs of forgotten tasks are kept (the manager keeps 5 ended tasks per slot). */
export const KEPT_ENDED_LOGS = 50;

/** In a container task's directory (beside its log) while the container runner holds it; a process task's has `pid`. */
export const CONTAINER_MARKER = "container";

/** Removes the directories of forgotten tasks (neither a pid file nor a container marker) beyond the newest KEPT_ENDED_LOGS. */
export function pruneEndedLogs(dir: string, held: (taskId: string) => boolean): void {
  const forgotten = readdirSync(dir)
    .filter((id) => !held(id) && !existsSync(join(dir, id, "pid")) && !existsSync(join(dir, id, CONTAINER_MARKER)))
    .map((id) => ({ id, mtime: statSync(join(dir, id)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const { id } of forgotten.slice(KEPT_ENDED_LOGS)) rmSync(join(dir, id), { recursive: true, force: true });
}

interface Tracked {
  /** The confine helper's outer process: the task's whole life. */
  pid: number;
  startTime: string;
  exited: boolean;
}

export interface ProcessRunnerOptions {
  stateDir: string;
  /** Put first on the task's PATH, so that `vipmesh` is found inside. */
  binDir: string;
  stopGraceMs: number;
  /** Each task's cgroup; absent: tasks run in the agent's. */
  cgroups?: TaskCgroups;
  /** Paths of the node no task may see, besides confine.ts's HIDDEN_PATHS and the state dir. */
  hide?: string[];
  /** TASK_LOG_MAX_BYTES unless given (tests). */
  logMaxBytes?: number;
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
    const home = join(taskDir, "root");
    mkdirSync(home, { recursive: true });
    writeFileSync(join(taskDir, "confinement.json"), JSON.stringify(spec.confinement));
    const cgroups = this.options.cgroups?.create(spec.taskId, spec.confinement) ?? [];
    const log = openSync(this.logFile(spec.taskId), "a");
    const env: Record<string, string> = {
      PATH: `${this.options.binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: "/root",
      HOSTNAME: spec.hostname,
      ...Object.fromEntries(spec.env.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)])),
      VIPMESH_TASK_ID: spec.taskId,
      VIPMESH_SERVICE: spec.serviceName,
    };
    const confine = runArgs({
      confinement: spec.confinement,
      sandbox: spec.sandbox,
      cgroups,
      hostname: spec.hostname,
      home,
      hide: [this.options.stateDir, ...(this.options.hide ?? [])],
      log: this.logFile(spec.taskId),
      logMaxBytes: this.options.logMaxBytes ?? TASK_LOG_MAX_BYTES,
      command: spec.command,
    });
    // the confine helper's pid is the task's life; it writes the log (rotating it) from the task's pipes, and its own early failures to this fd
    const child = spawn(CONFINE, confine, { detached: true, stdio: ["ignore", log, log], env });
    closeSync(log);
    return new Promise((resolve, reject) => {
      child.once("error", (err) => {
        this.options.cgroups?.remove(spec.taskId);
        reject(err);
      });
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

  /** Forgets a task: its pid file and cgroups go; its log stays until it is among the oldest of the forgotten. */
  forget(taskId: string): void {
    this.tracked.delete(taskId);
    this.options.cgroups?.remove(taskId);
    rmSync(join(this.dir, taskId, "pid"), { force: true });
    pruneEndedLogs(this.dir, (id) => this.tracked.has(id));
  }

  /** `sh -c TEST` inside the task, as confined as it, killed at its timeout. */
  check(run: CheckRun): Promise<boolean> {
    const t = this.tracked.get(run.taskId);
    if (!t || t.exited) return Promise.resolve(false);
    // entered through its init, whose cgroups are the task's (the outer joins them in its first instant)
    const init = initUnder(t.pid);
    if (init === undefined) return Promise.resolve(false); // still starting
    let args: string[];
    try {
      const confinement: Confinement = JSON.parse(readFileSync(join(this.dir, run.taskId, "confinement.json"), "utf8"));
      args = enterArgs(init, confinement, ["sh", "-c", run.test.join(" ")]);
    } catch {
      return Promise.resolve(false); // the task ended meanwhile
    }
    return runEntered(args, run.timeoutMs);
  }

  close(): void {
    clearInterval(this.poll);
  }
}
