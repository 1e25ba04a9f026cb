// What the lab does to this machine, shared by the single manager's lab
// (lab.ts) and the one with managers on etcd (managers.ts): ip commands in
// the lab's namespaces, and processes started detached inside them.

import { execFileSync, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { writePidFile } from "./pid-file.ts";

export const UNDERLAY = "192.168.100"; // a /24 that exists only inside the lab's own namespaces
export const MANAGER_PORT = 4242;
/** Docker's port for the Engine API over TLS. */
export const DOCKER_TLS_PORT = 2376;
export const VIPMESH = fileURLToPath(new URL("../../../bin/vipmesh", import.meta.url));
/** How often the lab checks for what it waits for (nodes ready, a manager's socket). */
export const POLL_MS = 100;

export const ip = (...args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "pipe", "pipe"] }).toString();

/** One `ip -n NS -batch` per namespace, in the order the namespaces come. */
export function ipBatches(batches: [netns: string, lines: string[]][]): void {
  for (const [netns, lines] of batches) {
    execFileSync("ip", ["-n", netns, "-batch", "-"], { input: `${lines.join("\n")}\n`, stdio: ["pipe", "pipe", "pipe"] });
  }
}

export const listNamespaces = (): string[] =>
  ip("netns", "list")
    .split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter(Boolean);

/** Processes whose network namespace is `ns`. */
export const namespacePids = (ns: string): number[] =>
  ip("netns", "pids", ns)
    .split("\n")
    .filter(Boolean)
    .map(Number);

/** Runs `command` in `netns`, detached (a process group of its own), output appended to `logFile`; its pid to `pidFile`. */
export function startDetached(logFile: string, pidFile: string, netns: string, command: string[]): void {
  const log = openSync(logFile, "a");
  // nsenter, not `ip netns exec`: that gives a private mount namespace, in which the
  // sandboxes an agent names (bind mounts under /run/netns) would be visible to it alone
  const child = spawn("nsenter", [`--net=/run/netns/${netns}`, "--", ...command], {
    detached: true,
    stdio: ["ignore", log, log],
    // no secret of the lab's in the environment: the agents' join token comes from its 0600 file
    env: process.env,
  });
  closeSync(log);
  child.unref();
  writePidFile(pidFile, child.pid!);
}

/** Waits synchronously (the lab's node commands are synchronous). */
export const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** The kernel's word on processes it killed (the OOM killer leaves a process no chance to log why), for an error message. */
export function killedByKernel(): string {
  try {
    const lines = execFileSync("dmesg", [], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
      .split("\n")
      .filter((line) => /out of memory|oom-kill|killed process/i.test(line));
    return lines.length > 0 ? `; the kernel says:\n${lines.slice(-3).join("\n")}` : "";
  } catch {
    return "";
  }
}
