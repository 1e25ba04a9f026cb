// A private containerd (a lab node's, a test's): its own root, state, socket
// and config under one directory, started inside a network namespace with
// nsenter --net (not `ip netns exec`, whose private mount namespace would hide
// the host's /run/netns bind mounts from the shims). stop() leaves the
// directory removable: tasks killed, shims gone, mounts under it unmounted.

import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { Containerd } from "./client.ts";
import { isCode } from "./rpc.ts";

const CONTAINERD = "/usr/bin/containerd";
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
const POLL_MS = 50;
const LOG_TAIL_LINES = 15;

// Plugins that touch the host outside <dir> or only fail here (CRI, other snapshotters, /opt installer, tracing).
const DISABLED_PLUGINS = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.opt",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
];

export interface ContainerdDaemon {
  socket: string;
  pid: number;
  dir: string;
  stop(): Promise<void>;
}

function configToml(dir: string, socket: string): string {
  const q = (s: string) => JSON.stringify(s);
  return `version = 2
root = ${q(`${dir}/root`)}
state = ${q(`${dir}/state`)}
disabled_plugins = [${DISABLED_PLUGINS.map(q).join(", ")}]

[grpc]
  address = ${q(socket)}

[ttrpc]
  address = ${q(`${socket}.ttrpc`)}

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""
`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // a zombie still answers kill(0); its state says it is gone
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function tail(path: string): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-LOG_TAIL_LINES).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Starts containerd with its config under `dir` (made if missing); resolves once it answers. */
export async function startContainerd(o: { dir: string; netns?: string; log?: string }): Promise<ContainerdDaemon> {
  const dir = resolve(o.dir);
  if (!existsSync(CONTAINERD)) throw new Error(`${CONTAINERD} is not installed (apt-get install containerd)`);
  if (o.netns && !existsSync(`/run/netns/${o.netns}`)) throw new Error(`network namespace ${o.netns} does not exist (/run/netns/${o.netns})`);
  mkdirSync(dir, { recursive: true });
  const socket = `${dir}/containerd.sock`;
  // a unix socket path is at most 107 bytes; the shims' are hashed, but ours is not
  if (Buffer.byteLength(socket) > 100) throw new Error(`containerd's socket path is too long (${socket}): use a shorter dir`);
  const config = `${dir}/config.toml`;
  writeFileSync(config, configToml(dir, socket));
  const log = o.log ?? `${dir}/containerd.log`;
  const fd = openSync(log, "a");
  const argv = [CONTAINERD, "--config", config];
  const cmd = o.netns ? ["nsenter", `--net=/run/netns/${o.netns}`, "--", ...argv] : argv;
  const child = spawn(cmd[0] as string, cmd.slice(1), { detached: true, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${cmd.join(" ")}`);
  let exitCode: number | null = null;
  child.on("exit", (code, signal) => {
    exitCode = code ?? (signal ? 128 : 0);
  });
  child.unref();
  const daemon: ContainerdDaemon = { socket, pid, dir, stop: () => stopContainerd(dir, socket, pid) };
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exitCode !== null) throw new Error(`containerd exited (${exitCode}) while starting; its log (${log}) ends:\n${tail(log)}`);
    if (existsSync(socket)) {
      try {
        const c = await Containerd.connect({ socket, namespace: "default" });
        c.close();
        return daemon;
      } catch {
        // not answering yet
      }
    }
    if (Date.now() > deadline) {
      await daemon.stop().catch(() => {});
      throw new Error(`containerd did not answer on ${socket} within ${START_TIMEOUT_MS / 1000}s; its log (${log}) ends:\n${tail(log)}`);
    }
    await sleep(POLL_MS);
  }
}

/** SIGKILLs and deletes every task of every namespace, then stops containerd, its shims and its mounts. */
async function stopContainerd(dir: string, socket: string, pid: number): Promise<void> {
  if (alive(pid)) await killAllTasks(socket).catch(() => {});
  if (alive(pid)) {
    process.kill(pid, "SIGTERM");
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (alive(pid) && Date.now() < deadline) await sleep(POLL_MS);
    if (alive(pid)) process.kill(pid, "SIGKILL");
    while (alive(pid)) await sleep(POLL_MS);
  }
  for (const shim of shimsOf(socket)) {
    try {
      process.kill(shim, "SIGKILL");
    } catch {
      // already gone
    }
  }
  unmountUnder(dir);
}

async function killAllTasks(socket: string): Promise<void> {
  const root = await Containerd.connect({ socket, namespace: "default" });
  try {
    for (const ns of await root.namespaces()) {
      const c = await root.inNamespace(ns);
      try {
        for (const t of await c.tasks()) {
          if (t.status !== "stopped") {
            const exited = c.wait(t.id).catch(() => undefined);
            await c.kill(t.id, "SIGKILL", { all: true }).catch((err) => {
              if (!isCode(err, "not-found")) throw err;
            });
            await Promise.race([exited, new Promise((r) => setTimeout(r, STOP_TIMEOUT_MS).unref())]); // a process stuck in the kernel must not hang stop()
          }
          await c.deleteTask(t.id).catch(() => {});
        }
      } finally {
        c.close();
      }
    }
  } finally {
    root.close();
  }
}

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
