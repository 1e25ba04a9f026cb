// A private containerd (a lab node's, a test's): its own root, state, socket
// and config under one directory, started inside a network namespace with
// nsenter --net (not `ip netns exec`, whose private mount namespace would hide
// the host's /run/netns bind mounts from the shims). stop() leaves the
// directory removable: tasks killed, shims gone, mounts under it unmounted.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { Containerd } from "./client.ts";
import { shimsOf, unmountUnder } from "./host.ts";
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
