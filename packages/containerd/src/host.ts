// What a private containerd leaves on its host, found and undone without
// speaking to it: its shims, and the mounts under its directory. Synchronous and
// free of gRPC, for the lab's teardown (also after a crash, containerd gone).

import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

/** Shims started by the containerd at `socket` (their command line says `-address <socket>`). */
export function shimsOf(socket: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (!argv[0]?.includes("containerd-shim")) continue;
    const at = argv.indexOf("-address");
    if (at >= 0 && argv[at + 1] === socket) out.push(Number(name));
  }
  return out;
}

/** Mount points at or under `dir`, deepest first (from /proc/self/mountinfo). */
export function mountsUnder(dir: string): string[] {
  const prefix = resolve(dir);
  const points = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8))))
    .filter((p) => p === prefix || p.startsWith(`${prefix}/`));
  return [...new Set(points)].sort((a, b) => b.split("/").length - a.split("/").length || b.localeCompare(a));
}

/** Unmounts every mount at or under `dir`, deepest first (lazily when one is still busy); returns what is still mounted. */
export function unmountUnder(dir: string): string[] {
  for (const point of mountsUnder(dir)) {
    try {
      execFileSync("umount", [point], { stdio: "ignore" });
    } catch {
      try {
        execFileSync("umount", ["-l", point], { stdio: "ignore" });
      } catch {
        // gone meanwhile, or not ours to unmount: mountsUnder below says what stays
      }
    }
  }
  return mountsUnder(dir);
}
