// The command lines of vipmesh-confine (confine.c, built into
// build/vipmesh-confine by `npm ci`): how a task starts confined, and how its
// health checks and `vipmesh exec` enter it as confined as the task. The one
// place that says what a task sees of its node: see docs/ARCHITECTURE.md,
// "Task confinement".

import { ALL_CAPABILITIES, type Confinement } from "@vipmesh/core";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { openFilesLimit } from "../exec/limits.ts";
import { cgroupDirsOf } from "./cgroups.ts";
import { fileURLToPath } from "node:url";

export const CONFINE = fileURLToPath(new URL("../../build/vipmesh-confine", import.meta.url));

/** Where vipmesh itself is installed: shown to tasks (read-only) so that `vipmesh` runs inside, wherever the checkout is. */
const INSTALL_DIR = fileURLToPath(new URL("../../../../", import.meta.url));

/**
 * What no task sees of its node (made empty): users' homes and the node's
 * keys and passwords, the state of vipmesh and other services (/var/lib), and
 * every sandbox's /etc/netns files. /run (where the lab and `ip netns` keep
 * theirs) and /tmp are a task's own tmpfs; /root is its own directory.
 */
export const HIDDEN_PATHS = [
  "/home",
  "/etc/ssh",
  "/etc/shadow",
  "/etc/gshadow",
  "/etc/sudoers",
  "/etc/sudoers.d",
  "/etc/netns",
  "/etc/vipmesh",
  "/var/lib",
  "/var/log",
  "/var/spool",
  "/var/backups",
  "/var/tmp",
  "/boot",
  "/mnt",
  "/media",
  "/srv",
];

/** The open files a task may have, where the agent's hard limit is not lower (nothing may ask for more). */
export const TASK_NOFILE = 65_536;

/** The capability bitmask of a set of CAP_ names (their position in the kernel's list is their number). */
export function capabilityMask(names: readonly string[]): string {
  let mask = 0n;
  for (const name of names) {
    const n = (ALL_CAPABILITIES as readonly string[]).indexOf(name);
    if (n >= 0) mask |= 1n << BigInt(n);
  }
  return mask.toString(16);
}

/** Options both modes share: the task's cgroups, capabilities, user and open-files limit. */
function common(c: Confinement, cgroups: readonly string[]): string[] {
  return [
    ...cgroups.flatMap((d) => ["--cgroup", d]),
    "--caps",
    capabilityMask(c.capabilities),
    ...(c.user ? ["--user", c.user] : []),
    "--nofile",
    String(taskNofile()),
  ];
}

export interface RunOptions {
  confinement: Confinement;
  /** The sandbox (network namespace) the task runs in. */
  sandbox: string;
  /** The task's cgroup directories, joined before anything else. */
  cgroups: readonly string[];
  hostname: string;
  /** The task's writable directory, its /root. */
  home: string;
  /** More paths to hide (the agent's state dir). */
  hide: readonly string[];
  /** The task's log file (confine's shim writes it: task-log.ts's lines). */
  log: string;
  /** Past this size the log becomes `log.1` and a new one starts: 2 × this at most per task. */
  logMaxBytes: number;
  command: readonly string[];
}

/**
 * vipmesh runs through tsx, which keeps what it compiled in /tmp/tsx-UID:
 * shown read-only, the agent's spares each task compiling the CLI again
 * (a third of `vipmesh whoami`'s start here); what a task compiles anew stays its own.
 */
const TSX_CACHE = `/tmp/tsx-${process.getuid?.() ?? 0}`;

/** vipmesh-confine run … -- COMMAND */
export function runArgs(o: RunOptions): string[] {
  // node, where it is not under /usr (say ~/.nvm): its whole installation
  const node = dirname(dirname(process.execPath));
  const keep = [INSTALL_DIR, TSX_CACHE, ...(node.startsWith("/usr") ? [] : [node])].filter((p) => existsSync(p));
  return [
    "run",
    ...common(o.confinement, o.cgroups),
    "--netns",
    o.sandbox,
    "--hostname",
    o.hostname,
    "--home",
    o.home,
    ...[...HIDDEN_PATHS, ...o.hide].flatMap((p) => ["--hide", p]),
    ...keep.flatMap((p) => ["--keep", p]),
    "--log",
    o.log,
    "--log-max-bytes",
    String(o.logMaxBytes),
    "--",
    ...o.command,
  ];
}

/**
 * vipmesh-confine enter … -- COMMAND: COMMAND in the task whose outer or
 * init process is `pid`, as confined as it and in its cgroups (health checks,
 * `vipmesh exec`).
 */
export function enterArgs(pid: number, confinement: Confinement, command: readonly string[], o: { container?: boolean } = {}): string[] {
  return ["enter", ...common(confinement, cgroupDirsOf(pid)), "--target", String(pid), ...(o.container ? ["--container", "1"] : []), "--", ...command];
}

/**
 * A container's stdout and stderr as containerd's shim hands them to a
 * binary:// log URI's program: confine's log shim, writing the task's log as
 * run's does. The query's pairs become its arguments (in no set order).
 */
export function containerLogUri(log: string, logMaxBytes: number): string {
  return `binary://${CONFINE}?--log=${encodeURIComponent(log)}&--log-max-bytes=${logMaxBytes}`;
}

/** The open files a task may have here (TASK_NOFILE, under the agent's own hard limit). */
export const taskNofile = (): number => Math.min(TASK_NOFILE, openFilesLimit().hard);

/** The task's init, the child of its outer process (the pid the agent tracks); undefined until the outer made it. */
export function initUnder(outer: number): number | undefined {
  try {
    const child = Number(readFileSync(`/proc/${outer}/task/${outer}/children`, "utf8").split(" ")[0]);
    return child > 0 && isTaskInit(child) ? child : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a process is a task's init: PID 1 of a PID namespace one below ours. */
export function isTaskInit(pid: number): boolean {
  try {
    const levels = readFileSync(`/proc/${pid}/status`, "utf8").match(/^NSpid:\s*(.*)$/m)?.[1]?.trim().split(/\s+/);
    return levels?.length === 2 && levels[1] === "1";
  } catch {
    return false;
  }
}

/** containerd's shim for runc: a container's PID 1 is its child. */
const CONTAINER_SHIM = "containerd-shim";

/**
 * When `pid` is a container's PID 1 (a task init whose parent is containerd's
 * shim), the UID:GID it runs as: what `vipmesh exec` runs as in it (the
 * image's user, resolved when it started). Undefined for a process task's init.
 */
export function containerInitUser(pid: number): string | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name: string) => status.match(new RegExp(`^${name}:\\s*(\\d+)`, "m"))?.[1];
    const parent = field("PPid");
    if (!parent || !readFileSync(`/proc/${parent}/comm`, "utf8").startsWith(CONTAINER_SHIM)) return undefined;
    return `${field("Uid")}:${field("Gid")}`;
  } catch {
    return undefined;
  }
}

/** Runs `vipmesh-confine enter …` (a health check): true when it exits 0 within `timeoutMs`, else it is killed. */
export function runEntered(args: string[], timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(CONFINE, args, { stdio: "ignore" });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", () => resolve(false));
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
}
