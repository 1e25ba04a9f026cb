// A cgroup per task, nested under the agent's own: its pids, memory and CPU
// limits, and (cgroup v1) the device list that keeps a task off the node's
// disks. cgroup v2 where the host's unified hierarchy has the controllers, v1
// otherwise (one directory per controller). The task's confine helper joins
// the directories at its start, so everything the task starts counts.
// Every parent made is listed in the agent's state dir (CGROUPS_RECORD), for
// `lab down` to remove what a killed agent's tasks leave.

import { appendFileSync, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface CgroupLimits {
  pids: number;
  /** 0 = none */
  memoryBytes: number;
  /** 0 = none */
  nanoCpus: number;
}

/** The controllers a task's cgroup uses. */
const CONTROLLERS = ["pids", "memory", "cpu", "devices"] as const;
type Controller = (typeof CONTROLLERS)[number];

/** Character devices a task may open (v1 devices controller): null, zero, full, random, urandom, tty, ptmx, pts. Never a disk. */
const ALLOWED_DEVICES = ["c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm"];

const CPU_PERIOD_US = 100_000;

/** The file in the agent's state dir that lists the cgroup parents it made. */
export const CGROUPS_RECORD = "cgroups";

interface Hierarchy {
  /** Where the agent's own cgroup is in it. */
  dir: string;
  controllers: Controller[];
}

interface CgroupMount {
  /** The cgroup mounted here (its path in the hierarchy), and where. */
  root: string;
  point: string;
  v2: boolean;
  /** v1's controllers (v2's are in its cgroup.controllers) */
  controllers: string[];
}

/** The cgroup file systems mounted (v1 and v2), from a mountinfo. */
function cgroupMounts(mountinfo: string): CgroupMount[] {
  return mountinfo.split("\n").flatMap((line) => {
    const [before, after] = line.split(" - ");
    const [type, , options] = (after ?? "").split(" ");
    if (type !== "cgroup" && type !== "cgroup2") return [];
    const fields = before!.split(" ");
    const controllers = type === "cgroup2" ? [] : options!.split(",").filter((o) => (CONTROLLERS as readonly string[]).includes(o) || /^(cpuacct|cpuset|freezer|blkio|net_cls|net_prio|perf_event|hugetlb|rdma|misc)$/.test(o));
    return [{ root: fields[3]!, point: fields[4]!, v2: type === "cgroup2", controllers }];
  });
}

/** Each hierarchy a /proc/PID/cgroup lists, with the directory it names (where its file system is mounted). */
function placesIn(cgroupFile: string, mounts: CgroupMount[]): { v2: boolean; controllers: string[]; dir: string }[] {
  return cgroupFile.split("\n").flatMap((line) => {
    const [, names, path] = line.match(/^\d+:([^:]*):(.*)$/) ?? [];
    if (path === undefined) return [];
    const controllers = names!.split(",").filter((n) => n && !n.startsWith("name="));
    if (names && !controllers.length) return []; // a named hierarchy without controllers (name=systemd)
    const v2 = names === "";
    const mount = mounts.find((m) => m.v2 === v2 && m.controllers.length === controllers.length && controllers.every((c) => m.controllers.includes(c)));
    if (!mount || !path.startsWith(mount.root)) return [];
    return [{ v2, controllers, dir: join(mount.point, path.slice(mount.root === "/" ? 0 : mount.root.length)) }];
  });
}

/** Where the agent's cgroups are, in the one v2 hierarchy when it has the pids controller, else in v1's. */
export function hierarchies(
  mountinfo = readFileSync("/proc/self/mountinfo", "utf8"),
  own = readFileSync("/proc/self/cgroup", "utf8"),
  controllersOf = (dir: string) => readFileSync(join(dir, "cgroup.controllers"), "utf8"),
): Hierarchy[] {
  const places = placesIn(own, cgroupMounts(mountinfo));
  const unified = places.find((p) => p.v2);
  if (unified) {
    const available = controllersOf(unified.dir).trim().split(" ");
    if (available.includes("pids")) return [{ dir: unified.dir, controllers: CONTROLLERS.filter((c) => available.includes(c)) }];
  }
  return places
    .filter((p) => !p.v2)
    .map((p) => ({ dir: p.dir, controllers: CONTROLLERS.filter((c) => p.controllers.includes(c)) }))
    .filter((h) => h.controllers.length > 0);
}

/** The cgroup directories a process is in, in every mounted hierarchy: what `enter` joins to count as the task. */
export function cgroupDirsOf(pid: number): string[] {
  const mounts = cgroupMounts(readFileSync("/proc/self/mountinfo", "utf8"));
  return placesIn(readFileSync(`/proc/${pid}/cgroup`, "utf8"), mounts)
    .map((p) => p.dir)
    .filter((d) => existsSync(join(d, "cgroup.procs")));
}

/**
 * A container's cgroup as runc takes it (one path, from each hierarchy's
 * root): under the agent's own cgroup in the memory hierarchy (v1) or the
 * unified one, so that the agent's own memory limit bounds its tasks too;
 * and that cgroup's directory in the hierarchy that counts memory (for its
 * OOM kills), if any.
 */
export function containerCgroup(
  parent: string,
  taskId: string,
  mountinfo = readFileSync("/proc/self/mountinfo", "utf8"),
  own = readFileSync("/proc/self/cgroup", "utf8"),
): { path: string; memoryDir?: string } {
  const lines = own.split("\n").map((l) => l.match(/^\d+:([^:]*):(.*)$/)).filter((m) => m !== null);
  const memory = lines.find((m) => m[1]!.split(",").includes("memory")) ?? lines.find((m) => m[1] === "");
  const base = memory?.[2] ?? "/";
  const path = join(base, parent, taskId);
  const place = placesIn(own, cgroupMounts(mountinfo)).find((p) => (memory?.[1] === "" ? p.v2 : p.controllers.includes("memory")));
  return { path, ...(place ? { memoryDir: join(place.dir, parent, taskId) } : {}) };
}

/** How many times the kernel's OOM killer struck in a memory cgroup (v1 memory.oom_control, v2 memory.events); 0 when unknown. */
export function oomKills(memoryDir: string): number {
  for (const file of ["memory.events", "memory.oom_control"]) {
    try {
      const m = readFileSync(join(memoryDir, file), "utf8").match(/^oom_kill (\d+)$/m);
      if (m) return Number(m[1]);
    } catch {}
  }
  return 0;
}

export class TaskCgroups {
  private readonly found: Hierarchy[];

  /** `parent`: the directory under the agent's own cgroup that holds its tasks'; `record`: where each made parent is listed. */
  constructor(
    private readonly o: { parent: string; record: string; log: (line: string) => void },
    found = hierarchies(),
  ) {
    this.found = found;
    const missing = CONTROLLERS.filter((c) => c !== "devices" && !found.some((h) => h.controllers.includes(c)));
    if (missing.length) o.log(`cgroups: no ${missing.join(", ")} controller here: tasks run without those limits`);
  }

  /** Makes the task's cgroups with its limits; returns the directories the task joins. */
  create(taskId: string, limits: CgroupLimits): string[] {
    const dirs: string[] = [];
    try {
      for (const h of this.found) {
        const parent = join(h.dir, this.o.parent);
        if (!existsSync(parent)) {
          mkdirSync(parent);
          appendFileSync(this.o.record, `${parent}\n`);
        }
        if (this.unified(h)) enableControllers(h, parent, limits);
        const dir = join(parent, taskId);
        mkdirSync(dir, { recursive: true });
        dirs.push(dir);
        for (const [file, value] of settings(h.controllers, limits, this.unified(h))) writeFileSync(join(dir, file), value);
      }
    } catch (err) {
      this.remove(taskId); // no half-made cgroups
      throw new Error(`cannot make the task's cgroup: ${err instanceof Error ? err.message : String(err)}`);
    }
    return dirs;
  }

  /** Removes the task's cgroups (once its processes are gone); true when none is left. */
  remove(taskId: string): boolean {
    let left = false;
    for (const h of this.found) {
      const dir = join(h.dir, this.o.parent, taskId);
      try {
        rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") left = true;
      }
    }
    return !left;
  }

  /** Whether tasks' cgroups are in cgroup v2's one hierarchy (where a container's cgroup needs its parents' controllers turned on first). */
  get unifiedOnly(): boolean {
    return this.found.length === 1 && this.unified(this.found[0]!);
  }

  private unified(h: Hierarchy): boolean {
    return existsSync(join(h.dir, "cgroup.subtree_control"));
  }
}

/**
 * cgroup v2 has no processes in inner cgroups: controllers are turned on for
 * the children of the agent's own cgroup and of the parent, as tasks need
 * them. Where the agent's own cgroup holds processes (the agent itself), the
 * agent first moves into a leaf `agent` beside its tasks' parent.
 */
function enableControllers(h: Hierarchy, parent: string, limits: CgroupLimits): void {
  // only those a limit needs: every controller turned on costs each process under it (memory: every page)
  const needed = (c: Controller) => c === "pids" || (c === "memory" && limits.memoryBytes > 0) || (c === "cpu" && limits.nanoCpus > 0);
  const enable = h.controllers.filter(needed).map((c) => `+${c}`).join(" ");
  try {
    writeFileSync(join(h.dir, "cgroup.subtree_control"), enable);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EBUSY") throw err;
    const leaf = join(h.dir, "agent");
    mkdirSync(leaf, { recursive: true });
    for (const pid of readFileSync(join(h.dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) writeFileSync(join(leaf, "cgroup.procs"), pid);
    writeFileSync(join(h.dir, "cgroup.subtree_control"), enable);
  }
  writeFileSync(join(parent, "cgroup.subtree_control"), enable);
}

/** The files that set a task's limits, in the order they are written. */
export function settings(controllers: readonly string[], limits: CgroupLimits, unified: boolean): [file: string, value: string][] {
  const out: [string, string][] = [];
  if (controllers.includes("pids")) out.push(["pids.max", String(limits.pids)]);
  if (controllers.includes("memory") && limits.memoryBytes) out.push([unified ? "memory.max" : "memory.limit_in_bytes", String(limits.memoryBytes)]);
  if (controllers.includes("cpu") && limits.nanoCpus) {
    const quota = Math.round((limits.nanoCpus * CPU_PERIOD_US) / 1e9);
    if (unified) out.push(["cpu.max", `${quota} ${CPU_PERIOD_US}`]);
    else out.push(["cpu.cfs_period_us", String(CPU_PERIOD_US)], ["cpu.cfs_quota_us", String(quota)]);
  }
  if (controllers.includes("devices") && !unified) {
    out.push(["devices.deny", "a"], ...ALLOWED_DEVICES.map((d): [string, string] => ["devices.allow", d]));
  }
  return out;
}
