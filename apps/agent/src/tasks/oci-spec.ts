// The OCI runtime spec of a container task: what runc is told to make, from
// the task's spec and its image's config. The container is confined as a
// process task is (confine.c): its own PID, mount, IPC and UTS namespaces,
// the sandbox's network namespace, Docker's capabilities, masked paths and
// seccomp deny list, no_new_privileges, the same rlimits, and its cgroup's
// limits. Its /etc/resolv.conf and /etc/hosts are the sandbox's (the
// embedded DNS at 127.0.0.11). Pure: the runner reads the files it needs.

import { type Confinement, commandOf, type ContainerSpec } from "@vipmesh/core";

/** What the runner knows of the task's image (containerd's image config). */
export interface ImageDefaults {
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workingDir: string;
  user: string;
}

export interface ContainerUser {
  uid: number;
  gid: number;
  additionalGids: number[];
}

export interface OciSpecInput {
  container: Pick<ContainerSpec, "command" | "args" | "image" | "env" | "dir">;
  image: ImageDefaults;
  hostname: string;
  /** Resolved from spec.user or the image's User (resolveUser). */
  user: ContainerUser;
  confinement: Confinement;
  /** /run/netns/<sandbox>: the network namespace the network reconciler made. */
  netns: string;
  /** The sandbox's files bind-mounted read-only over the container's /etc/… */
  etc: { hosts: string; resolvConf: string; hostname: string };
  /** The container's cgroup, from the hierarchy's root (runc makes it). */
  cgroupsPath: string;
  /** The open-files limit, as process tasks get it (confine.ts's TASK_NOFILE, under the agent's hard limit). */
  nofile: number;
}

/** Where argv, cwd and the environment come from, before the spec is built: an error is the task's, before anything is made. */
export function containerProcess(i: Pick<OciSpecInput, "container" | "image" | "hostname">): { args: string[]; env: string[]; cwd: string } | { error: string } {
  const run = commandOf(i.container, { entrypoint: i.image.entrypoint, cmd: i.image.cmd });
  if ("error" in run) return run;
  return { args: run.argv, env: mergeEnv(i.image.env, [`HOSTNAME=${i.hostname}`], i.container.env), cwd: i.container.dir || i.image.workingDir || "/" };
}

/** The default PATH when neither the image nor the spec gives one (Docker's). */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** KEY=VALUE lists, later ones overriding earlier ones by key, in first-seen order; PATH defaulted. */
export function mergeEnv(...lists: readonly (readonly string[])[]): string[] {
  const env = new Map<string, string>();
  for (const list of lists) {
    for (const entry of list) {
      const eq = entry.indexOf("=");
      const key = eq < 0 ? entry : entry.slice(0, eq);
      if (key) env.set(key, eq < 0 ? "" : entry.slice(eq + 1));
    }
  }
  if (!env.has("PATH")) env.set("PATH", DEFAULT_PATH);
  return [...env].map(([k, v]) => `${k}=${v}`);
}

/**
 * Docker's USER rule: "uid[:gid]" numeric needs no file; a name is looked up
 * in the image's /etc/passwd (its gid, unless a group is given), a group name
 * in its /etc/group; additional groups are those listing the user. "" = root.
 */
export function resolveUser(user: string, passwd: string | undefined, group: string | undefined): ContainerUser | { error: string } {
  const [name = "", groupName] = user.split(":", 2);
  const users = parseDb(passwd); // name:x:uid:gid:…
  const groups = parseDb(group); // name:x:gid:member,member
  const numeric = (s: string) => /^\d+$/.test(s);
  let uid: number;
  let gid: number;
  let userName: string | undefined;
  if (name === "" || numeric(name)) {
    uid = name === "" ? 0 : Number(name);
    const entry = users.find((u) => u[2] === String(uid));
    gid = entry ? Number(entry[3]) : 0;
    userName = entry?.[0];
  } else {
    const entry = users.find((u) => u[0] === name);
    if (!entry) return { error: `user "${name}" is not in the image's /etc/passwd${passwd === undefined ? " (the image has none)" : ""}: give a numeric UID[:GID]` };
    uid = Number(entry[2]);
    gid = Number(entry[3]);
    userName = name;
  }
  if (groupName !== undefined && groupName !== "") {
    if (numeric(groupName)) gid = Number(groupName);
    else {
      const entry = groups.find((g) => g[0] === groupName);
      if (!entry) return { error: `group "${groupName}" is not in the image's /etc/group${group === undefined ? " (the image has none)" : ""}: give a numeric GID` };
      gid = Number(entry[2]);
    }
  }
  if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid)) return { error: `user "${user}" does not name a valid UID and GID` };
  const additionalGids =
    userName === undefined ? [] : groups.filter((g) => (g[3] ?? "").split(",").includes(userName)).map((g) => Number(g[2])).filter((g) => g !== gid && Number.isSafeInteger(g));
  return { uid, gid, additionalGids: [...new Set(additionalGids)] };
}

const parseDb = (text: string | undefined): string[][] =>
  (text ?? "")
    .split("\n")
    .filter((l) => l.trim() && !l.startsWith("#"))
    .map((l) => l.split(":"));

/** Docker's masked paths (moby's oci/defaults.go), as confine.c masks them: made empty. */
export const MASKED_PATHS = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/interrupts",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/proc/sysrq-trigger",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];

/** Docker's read-only paths, as confine.c has them. */
export const READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"];

/** confine.c's seccomp deny list (Docker's default profile's, for a container without CAP_SYS_ADMIN and friends): EPERM. */
export const DENIED_SYSCALLS = [
  "keyctl",
  "add_key",
  "request_key",
  "bpf",
  "perf_event_open",
  "userfaultfd",
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  "kcmp",
  "pidfd_getfd",
  "unshare",
  "setns",
  "mount",
  "umount2",
  "pivot_root",
  "fsopen",
  "fsconfig",
  "fsmount",
  "fspick",
  "move_mount",
  "open_tree",
  "mount_setattr",
  "swapon",
  "swapoff",
  "reboot",
  "kexec_load",
  "kexec_file_load",
  "init_module",
  "finit_module",
  "delete_module",
  "acct",
  "open_by_handle_at",
  "name_to_handle_at",
  "syslog",
  "settimeofday",
  "clock_settime",
  "clock_adjtime",
  "adjtimex",
  "quotactl",
  "vhangup",
  "io_uring_setup",
  "io_uring_enter",
  "io_uring_register",
  "iopl",
  "ioperm",
  "uselib",
  "lookup_dcookie",
];

/** clone flags that make namespaces: a clone with any of them is refused (confine.c's NAMESPACE_FLAGS). */
const NAMESPACE_CLONE_FLAGS = {
  CLONE_NEWNS: 0x00020000,
  CLONE_NEWCGROUP: 0x02000000,
  CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000,
  CLONE_NEWUSER: 0x10000000,
  CLONE_NEWPID: 0x20000000,
  CLONE_NEWNET: 0x40000000,
};

const EPERM = 1;
const ENOSYS = 38;
const CPU_PERIOD_US = 100_000;

/** confine.c's filter in runc's terms: everything allowed but the denied calls, clone3 (ENOSYS: libc falls back to clone) and clone making a namespace. */
export function seccompProfile(): object {
  return {
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
    syscalls: [
      { names: DENIED_SYSCALLS, action: "SCMP_ACT_ERRNO", errnoRet: EPERM },
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
      ...Object.values(NAMESPACE_CLONE_FLAGS).map((flag) => ({
        names: ["clone"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: EPERM,
        args: [{ index: 0, value: flag, valueTwo: flag, op: "SCMP_CMP_MASKED_EQ" }],
      })),
    ],
  };
}

/** Read-only, and nothing on it runs or is a device. */
const ETC_BIND = ["rbind", "ro", "nosuid", "nodev", "noexec"];

/** The OCI runtime spec (runtime-spec 1.0) of a container task; argv, env and cwd from containerProcess. */
export function ociSpec(i: OciSpecInput, process: { args: string[]; env: string[]; cwd: string }): object {
  const c = i.confinement;
  const caps = [...c.capabilities];
  const held = i.user.uid === 0 ? caps : []; // as setuid leaves a process task: another user holds none, only the bounding set stays
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: i.user.uid, gid: i.user.gid, ...(i.user.additionalGids.length ? { additionalGids: i.user.additionalGids } : {}) },
      args: process.args,
      env: process.env,
      cwd: process.cwd,
      capabilities: { bounding: caps, effective: held, permitted: held, inheritable: [] },
      rlimits: [
        { type: "RLIMIT_NOFILE", hard: i.nofile, soft: i.nofile },
        { type: "RLIMIT_CORE", hard: 0, soft: 0 }, // a task's core dump would land on the node's disk
      ],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: false },
    hostname: i.hostname,
    mounts: [
      { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
      { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      { destination: "/etc/resolv.conf", type: "bind", source: i.etc.resolvConf, options: ETC_BIND },
      { destination: "/etc/hosts", type: "bind", source: i.etc.hosts, options: ETC_BIND },
      { destination: "/etc/hostname", type: "bind", source: i.etc.hostname, options: ETC_BIND },
    ],
    linux: {
      namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "network", path: i.netns }],
      cgroupsPath: i.cgroupsPath,
      resources: {
        devices: [{ allow: false, access: "rwm" }], // runc adds the default devices (null, zero, full, random, urandom, tty, ptmx) after this
        pids: { limit: c.pids },
        ...(c.memoryBytes > 0 ? { memory: { limit: c.memoryBytes } } : {}),
        ...(c.nanoCpus > 0 ? { cpu: { quota: Math.round((c.nanoCpus * CPU_PERIOD_US) / 1e9), period: CPU_PERIOD_US } } : {}),
      },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      seccomp: seccompProfile(),
    },
  };
}
