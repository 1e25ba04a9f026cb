// CPU time, to say how busy the machine was besides what a benchmark measures.

import { readFileSync } from "node:fs";
import { cpus } from "node:os";

/** CPU time (ms) all cores spent busy since boot, from os.cpus(). */
export function machineBusyMs(): number {
  let busy = 0;
  for (const c of cpus()) busy += c.times.user + c.times.nice + c.times.sys + c.times.irq;
  return busy;
}

/** Linux's clock ticks per second (USER_HZ), what /proc/PID/stat counts in. */
const TICKS_PER_S = 100;

/** CPU time (ms, user + system) process `pid` used so far; 0 once it is gone. */
export function processCpuMs(pid: number): number {
  try {
    // the fields after the command's closing parenthesis: state is the 3rd field, utime the 14th, stime the 15th
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ").at(-1)!.split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** Resident memory of process `pid` now and at its peak, in MB (/proc/PID/status VmRSS, VmHWM); NaN once it is gone. */
export function processRssMb(pid: number): { rssMb: number; peakMb: number } {
  let status = "";
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {}
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return { rssMb: kb("VmRSS") / 1024, peakMb: kb("VmHWM") / 1024 };
}
