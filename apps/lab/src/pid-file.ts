// The lab's pid files hold "PID STARTTIME". The start time (/proc/PID/stat
// field 22, in clock ticks since boot) tells the process that wrote the file
// from a later one that got the same pid, so a stale file is never taken for a
// live process, and nothing kills a stranger that reused the pid.
// Used by the lab and by its supervisor (supervisor.ts), which loads nothing else.

import { readFileSync, rmSync, writeFileSync } from "node:fs";

/**
 * When the process started, or undefined when it does not run: gone, or a
 * zombie (ended, not yet reaped by a parent that is busy waiting for it to end).
 */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // the command name in parentheses may hold spaces: count fields after the last ')'
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[0] === "Z" || fields[0] === "X" ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

export function writePidFile(file: string, pid: number): void {
  writeFileSync(file, `${pid} ${startTimeOf(pid) ?? ""}\n`, { mode: 0o600 });
}

/** The pid in `file` if that very process still runs; undefined for a missing or stale file. */
export function livePid(file: string): number | undefined {
  let pid: number;
  let started: string | undefined;
  try {
    const [p, s] = readFileSync(file, "utf8").trim().split(" ");
    pid = Number(p);
    started = s;
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1 || !started) return undefined;
  return startTimeOf(pid) === started ? pid : undefined;
}

/** Signals the process group of `pid` (the lab starts each process as a group leader), else the process alone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {}
  }
}

/** SIGKILLs the process of `file` (and its group) if it is still the one recorded; removes the file. */
export function killPidFile(file: string): void {
  const pid = livePid(file);
  if (pid !== undefined) signalGroup(pid, "SIGKILL");
  rmSync(file, { force: true });
}
