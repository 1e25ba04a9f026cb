// The agent's own open-files limit. Tasks make it hold descriptors (DNS
// connections and sockets, health-check processes), so it must run at the
// hard limit the host gives it: Node raises the soft limit to the hard one as
// it starts (limits.test.ts shows it), and root here lacks CAP_SYS_RESOURCE to go past it.

import { readFileSync } from "node:fs";

/** Soft and hard RLIMIT_NOFILE of this process, from /proc/self/limits. */
export function openFilesLimit(): { soft: number; hard: number } {
  const line = readFileSync("/proc/self/limits", "utf8")
    .split("\n")
    .find((l) => l.startsWith("Max open files"));
  const [soft, hard] = (line?.match(/\d+|unlimited/g) ?? []).map((v) => (v === "unlimited" ? Number.POSITIVE_INFINITY : Number(v)));
  if (soft === undefined || hard === undefined) throw new Error("cannot read this process's open-files limit from /proc/self/limits");
  return { soft, hard };
}
