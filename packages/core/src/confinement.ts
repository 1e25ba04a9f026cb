// What a task may do on its node: the one rule that turns a task's spec
// (user, --cap-add/--cap-drop, limits) into what the agent's runtime confines
// it to. The capability set and its add/drop semantics are Docker's, so a
// spec written for `docker service create` means the same here.

import type { TaskSpec } from "./types.ts";

/** Every capability the kernel knows (linux/capability.h, up to CAP_CHECKPOINT_RESTORE). */
export const ALL_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
] as const;

/** Docker's default set (moby's oci/caps/defaults.go). */
export const DEFAULT_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/** The processes and threads a task may have when its spec sets no limit. */
export const DEFAULT_PIDS_LIMIT = 4096;

/** `net_admin`, `NET_ADMIN` and `CAP_NET_ADMIN` are one capability; `all` is ALL. Undefined when unknown. */
export function canonicalCapability(name: string): string | undefined {
  const upper = name.trim().toUpperCase();
  if (upper === "ALL") return "ALL";
  const full = upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
  return (ALL_CAPABILITIES as readonly string[]).includes(full) ? full : undefined;
}

/**
 * Docker's rule: drops come off the default set, then adds go on; ALL in
 * drops starts from nothing, ALL in adds starts from everything. Unknown
 * names are the validator's to refuse; here they are ignored.
 */
export function effectiveCapabilities(add: readonly string[] = [], drop: readonly string[] = []): string[] {
  const adds = add.map(canonicalCapability).filter((c) => c !== undefined);
  const drops = drop.map(canonicalCapability).filter((c) => c !== undefined);
  if (adds.includes("ALL")) return ALL_CAPABILITIES.filter((c) => !drops.includes(c));
  const base = drops.includes("ALL") ? [] : DEFAULT_CAPABILITIES.filter((c) => !drops.includes(c));
  return ALL_CAPABILITIES.filter((c) => base.includes(c) || adds.includes(c));
}

/** What the runtime confines one task to. */
export interface Confinement {
  /** UID[:GID] or NAME[:GROUP]; "" = root. */
  user: string;
  /** The capabilities the task keeps (CAP_ names, in the kernel's order). */
  capabilities: string[];
  pids: number;
  /** 0 = no limit. */
  memoryBytes: number;
  /** 0 = no limit. */
  nanoCpus: number;
}

export function taskConfinement(spec: TaskSpec): Confinement {
  const limits = spec.resources?.limits;
  return {
    user: spec.container.user ?? "",
    capabilities: effectiveCapabilities(spec.container.capabilityAdd, spec.container.capabilityDrop),
    pids: limits?.pids || DEFAULT_PIDS_LIMIT,
    memoryBytes: limits?.memoryBytes || 0,
    nanoCpus: limits?.nanoCpus || 0,
  };
}
