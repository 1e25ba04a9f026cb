// Container tasks: an OCI image run by containerd (runc, through its shim)
// in the task's sandbox, confined as a process task is (oci-spec.ts). The
// container's ID is the task's; its labels say it is vipmesh's, so that a
// restarted agent adopts those still running (the shim outlives the agent).
// Its stdout and stderr reach confine's log shim through containerd's
// binary:// log URI, into the same log file, in the same lines, as a process
// task's. Images are readied in the background (prepare): found in
// containerd, else pulled, the task `preparing` meanwhile. Health checks and
// `vipmesh exec` enter the container as confined as it (confine's enter).

import type { Containerd, ImageRecord } from "@vipmesh/containerd";
import { type Confinement, type ContainerSpec, formatBytes, normalizeImageRef } from "@vipmesh/core";
import { EventEmitter } from "node:events";
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, rmSync, type Stats, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NETNS_ETC } from "../sandbox/etc.ts";
import { CGROUPS_RECORD, containerCgroup, oomKills, TaskCgroups } from "./cgroups.ts";
import { containerLogUri, enterArgs, runEntered, taskNofile } from "./confine.ts";
import { type ContainerUser, containerProcess, ociSpec, resolveUser } from "./oci-spec.ts";
import { CONTAINER_MARKER, pruneEndedLogs, TASK_LOG_MAX_BYTES } from "./process-runner.ts";
import { type CheckRun, type ExitReport, NotPrepared, type Preparation, type Runtime, type StartSpec } from "./runtime.ts";

/** The labels of a vipmesh container: the task it runs, and its service. */
export const TASK_LABEL = "vipmesh.task";
export const SERVICE_LABEL = "vipmesh.service";

/** A pull's progress is told to the reconciler at most this often. */
const PROGRESS_INTERVAL_MS = 1000;

/** In a task's directory: how its container ended (an ExitReport). */
const END_FILE = "end.json";

/** While containerd does not answer, how often a task's end is asked for again. */
const FOLLOW_RETRY_MS = 1000;

/** After SIGKILL, how long stop waits for containerd to see the task gone. */
const KILL_WAIT_MS = 10_000;

/** The most a stop or forget waits on one containerd call: past it, the container is left for the next pass. */
const CALL_BOUND_MS = 30_000;

/** After the events stream fails, how long until it is subscribed again (doubling up to EVENTS_RETRY_MAX_MS). */
const EVENTS_RETRY_MS = 500;
const EVENTS_RETRY_MAX_MS = 30_000;

export interface ContainerRunnerOptions {
  containerd: Containerd;
  /** The agent's state dir: each task's log is in tasks/<id>/, beside process tasks'. */
  stateDir: string;
  stopGraceMs: number;
  /** The cgroup, under the agent's own, that holds one per task. */
  cgroupParent: string;
  /** Where the sandboxes' hosts and resolv.conf are (sandbox/etc.ts). */
  etcDir?: string;
  logMaxBytes?: number;
  log: (line: string) => void;
}

interface Tracked {
  pid: number;
  exited: boolean;
  /** Being stopped by the agent: its end is not an exit to report. */
  stopping: boolean;
  /** The kernel's OOM killer struck in its cgroup (containerd's /tasks/oom). */
  oom: boolean;
  memoryBytes: number;
  stopSignal: string;
  /** Exactly once, when it ends. */
  ended: Promise<void>;
  /** Its container being deleted (one deletion at a time, joined by a later stop or forget). */
  removal?: Promise<void>;
}

/** Where readying one image stands, shared by the tasks that wait for it. */
interface ImagePull {
  state: Preparation;
  /** The tasks waiting for it, by task ID: each is told as it moves on. */
  waiting: Map<string, () => void>;
  toldAt: number;
}

/** What a health check and `vipmesh exec` run as: the task's confinement with its user resolved (no name lookups inside). */
interface Entry {
  confinement: Confinement;
}

export class ContainerRunner extends EventEmitter<{ exit: [ExitReport] }> implements Runtime {
  private readonly tracked = new Map<string, Tracked>();
  private readonly pulls = new Map<string, ImagePull>();
  /** Tasks whose image could not be had: said the same until they leave. */
  private readonly unprepared = new Map<string, string>();
  /** Tasks whose image was found ready (start looks it up again: gone meanwhile, the task prepares again). */
  private readonly readied = new Set<string>();
  /** What a previous agent left: found by open(), taken by adopt(). */
  private leftBehind: { adopted: string[]; lost: string[] } = { adopted: [], lost: [] };
  /** … and the ends of its containers that ended while no agent ran, where known. */
  private endedMeanwhile: ExitReport[] = [];
  private unsubscribe: (() => void) | undefined;
  private eventsRetry: NodeJS.Timeout | undefined;
  private closed = false;
  /** The agent's cgroup as it was at the start (on cgroup v2 the agent may move into a leaf of it). */
  private readonly cgroupOf: (taskId: string) => { path: string; memoryDir?: string };
  /** cgroup v2: runc cannot turn controllers on above a cgroup with processes (the agent's own): done first, as for process tasks. */
  private readonly unified: TaskCgroups | undefined;

  private constructor(private readonly o: ContainerRunnerOptions) {
    super();
    mkdirSync(this.dir, { recursive: true });
    const base = containerCgroup("", "");
    this.cgroupOf = (taskId) => ({
      path: join(base.path, o.cgroupParent, taskId),
      ...(base.memoryDir ? { memoryDir: join(base.memoryDir, o.cgroupParent, taskId) } : {}),
    });
    const cgroups = new TaskCgroups({ parent: o.cgroupParent, record: join(o.stateDir, CGROUPS_RECORD), log: o.log });
    this.unified = cgroups.unifiedOnly ? cgroups : undefined;
  }

  /** A runner over a connected containerd, with what a previous agent left running found (adopt() takes it). */
  static async open(o: ContainerRunnerOptions): Promise<ContainerRunner> {
    const runner = new ContainerRunner(o);
    runner.subscribe(EVENTS_RETRY_MS);
    for (const c of await o.containerd.containers()) {
      const taskId = c.labels[TASK_LABEL];
      if (!taskId || taskId !== c.id) continue;
      const task = await o.containerd.task(c.id);
      if (task?.status === "created") {
        // the last agent stopped between creating its task and starting it: nothing ran; it goes, and is lost
        runner.tracked.set(c.id, { pid: 0, exited: true, stopping: false, oom: false, memoryBytes: 0, stopSignal: "SIGTERM", ended: Promise.resolve() });
        await runner.removeContainer(c.id, runner.tracked.get(c.id)!);
        runner.leftBehind.lost.push(c.id);
        continue;
      }
      const alive = task !== undefined && task.status !== "stopped" && task.status !== "unknown";
      if (alive) {
        runner.track(c.id, task.pid, runner.entryOf(c.id)?.confinement.memoryBytes ?? 0, readStopSignal(runner.taskDir(c.id)));
        runner.leftBehind.adopted.push(c.id);
        continue;
      }
      runner.tracked.set(c.id, { pid: 0, exited: true, stopping: false, oom: false, memoryBytes: 0, stopSignal: "SIGTERM", ended: Promise.resolve() });
      // how it ended, if a runner saw it (kept beside its log) or containerd still has it; else it is lost
      const seen = runner.endOf(c.id) ?? (task?.exitStatus !== undefined ? { taskId: c.id, code: task.exitStatus, signal: null } : undefined);
      await o.containerd.deleteTask(c.id).catch(() => undefined);
      if (seen) runner.endedMeanwhile.push(seen);
      else runner.leftBehind.lost.push(c.id);
    }
    return runner;
  }

  /** containerd's events (OOM kills), subscribed again after the stream fails (containerd restarted), with backoff. */
  private subscribe(delayMs: number): void {
    if (this.closed) return;
    let delay = delayMs;
    let failed = false;
    this.unsubscribe = this.o.containerd.events(
      (e) => {
        delay = EVENTS_RETRY_MS; // it works again: the next failure starts the backoff anew
        this.onEvent(e.topic, e.event);
      },
      (err) => {
        if (failed || this.closed) return;
        failed = true;
        this.o.log(`containerd's events stream failed (subscribing again in ${delay} ms): ${messageOf(err)}`);
        this.eventsRetry = setTimeout(() => this.subscribe(Math.min(delay * 2, EVENTS_RETRY_MAX_MS)), delay).unref();
      },
    );
  }

  /** The end a runner recorded for the task (exited()), if any. */
  private endOf(taskId: string): ExitReport | undefined {
    try {
      return JSON.parse(readFileSync(join(this.taskDir(taskId), END_FILE), "utf8")) as ExitReport;
    } catch {
      return undefined;
    }
  }

  private get dir(): string {
    return join(this.o.stateDir, "tasks");
  }

  private taskDir(taskId: string): string {
    return join(this.dir, taskId);
  }

  logFile(taskId: string): string {
    return join(this.taskDir(taskId), "log");
  }

  /** Adopts what still runs; the ends seen while no agent ran are told as exits once the caller listens. */
  adopt(): { adopted: string[]; lost: string[] } {
    const found = this.leftBehind;
    const ended = this.endedMeanwhile;
    this.leftBehind = { adopted: [], lost: [] };
    this.endedMeanwhile = [];
    setImmediate(() => {
      for (const e of ended) this.emit("exit", e);
    });
    return found;
  }

  isRunning(taskId: string): boolean {
    const t = this.tracked.get(taskId);
    return t !== undefined && !t.exited;
  }

  known(): string[] {
    return [...this.tracked.keys()];
  }

  prepare(task: { taskId: string; container: ContainerSpec }, onChange: () => void): Preparation {
    const given = task.container.image?.trim() ?? "";
    const refused = this.unprepared.get(task.taskId);
    if (refused) return { state: "failed", error: refused };
    let ref: string;
    try {
      ref = normalizeImageRef(given);
    } catch (err) {
      return this.refuse(task.taskId, `image "${given}" is not a valid reference: ${messageOf(err)}`);
    }
    if (this.readied.has(task.taskId)) return { state: "ready" };
    let pull = this.pulls.get(ref);
    if (!pull) {
      pull = { state: { state: "preparing", message: `looking for ${ref}` }, waiting: new Map(), toldAt: 0 };
      this.pulls.set(ref, pull);
      void this.ready(ref, pull);
    }
    pull.waiting.set(task.taskId, onChange);
    return pull.state;
  }

  /**
   * The image found in containerd, else pulled; whoever waits is told as it
   * moves on. Once it is ready or failed, the pull is dropped: its waiting
   * tasks are readied or refused together, and a later task looks again.
   */
  private async ready(ref: string, pull: ImagePull): Promise<void> {
    const tell = (force: boolean) => {
      if (!force && Date.now() - pull.toldAt < PROGRESS_INTERVAL_MS) return;
      pull.toldAt = Date.now();
      for (const f of pull.waiting.values()) f();
    };
    try {
      if (!(await this.o.containerd.image(ref))) {
        pull.state = { state: "preparing", message: `pulling ${ref}` };
        tell(true);
        await this.o.containerd.pull(ref, ({ doneBytes, totalBytes }) => {
          pull.state = { state: "preparing", message: `pulling ${ref}: ${megabytes(doneBytes)} of ${megabytes(totalBytes)}` };
          tell(false);
        });
        this.o.log(`pulled ${ref}`);
      }
      pull.state = { state: "ready" };
    } catch (err) {
      pull.state = { state: "failed", error: `image "${ref}" cannot be pulled: ${messageOf(err)}` };
    }
    if (this.pulls.get(ref) === pull) this.pulls.delete(ref);
    for (const taskId of pull.waiting.keys()) {
      if (pull.state.state === "failed") this.refuse(taskId, pull.state.error);
      else this.readied.add(taskId);
    }
    tell(true);
    pull.waiting.clear();
  }

  private refuse(taskId: string, error: string): Preparation {
    this.unprepared.set(taskId, error);
    if (this.unprepared.size > 10_000) this.unprepared.delete(this.unprepared.keys().next().value!);
    return { state: "failed", error };
  }

  async start(spec: StartSpec): Promise<void> {
    const given = spec.container.image?.trim() ?? "";
    const ref = normalizeImageRef(given);
    const image = await this.o.containerd.image(ref);
    this.readied.delete(spec.taskId);
    if (!image) throw new NotPrepared(`image "${ref}" is no longer on this node (removed since it was found): looking for it again`);
    const process = containerProcess({ container: spec.container, image: image.config, hostname: spec.hostname });
    if ("error" in process) throw new Error(process.error);
    const taskDir = this.taskDir(spec.taskId);
    mkdirSync(taskDir, { recursive: true });
    writeFileSync(join(taskDir, CONTAINER_MARKER), `${ref}\n`);
    rmSync(join(taskDir, END_FILE), { force: true });
    const hostnameFile = join(taskDir, "hostname");
    writeFileSync(hostnameFile, `${spec.hostname}\n`);
    const cgroup = this.cgroupOf(spec.taskId);
    this.unified?.create(spec.taskId, spec.confinement);
    const labels = { [TASK_LABEL]: spec.taskId, [SERVICE_LABEL]: spec.serviceName };
    const etc = this.o.etcDir ?? NETNS_ETC;
    const build = (user: ContainerUser) =>
      ociSpec(
        {
          container: spec.container,
          image: image.config,
          hostname: spec.hostname,
          user,
          confinement: spec.confinement,
          netns: `/run/netns/${spec.sandbox}`,
          etc: { hosts: join(etc, spec.sandbox, "hosts"), resolvConf: join(etc, spec.sandbox, "resolv.conf"), hostname: hostnameFile },
          cgroupsPath: cgroup.path,
          nofile: taskNofile(),
        },
        process,
      );
    // what a start that failed half-way left
    const leftover = this.o.containerd.deleteContainer(spec.taskId, { waitMs: KILL_WAIT_MS });
    if (!(await bounded(leftover.catch(() => undefined), CALL_BOUND_MS + KILL_WAIT_MS))) {
      throw new Error(`containerd did not remove what an earlier start of ${spec.taskId} left within ${(CALL_BOUND_MS + KILL_WAIT_MS) / 1000} s`);
    }
    await leftover;
    try {
      const user = await this.userOf(spec, image, (u) => this.o.containerd.createContainer({ id: spec.taskId, image, spec: build(u), labels }));
      const confinement: Confinement = { ...spec.confinement, user: `${user.uid}:${user.gid}` };
      writeFileSync(join(taskDir, "entry.json"), JSON.stringify({ confinement } satisfies Entry));
      if (image.config.stopSignal) writeFileSync(join(taskDir, "stop-signal"), image.config.stopSignal);
      const logMax = this.o.logMaxBytes ?? TASK_LOG_MAX_BYTES;
      const { pid } = await this.o.containerd.startTask(spec.taskId, { stdioUri: containerLogUri(this.logFile(spec.taskId), logMax) });
      this.track(spec.taskId, pid, spec.confinement.memoryBytes, image.config.stopSignal || "SIGTERM", cgroup.memoryDir);
    } catch (err) {
      await this.o.containerd.deleteContainer(spec.taskId).catch(() => undefined); // nothing half-made stays
      this.unified?.remove(spec.taskId);
      rmSync(join(taskDir, CONTAINER_MARKER), { force: true });
      throw err;
    }
  }

  /**
   * The container's user (spec.user, else the image's), made by `create`:
   * numbers as they are; names looked up in the image's /etc/passwd and
   * /etc/group, read through the container's snapshot once it is made (the
   * container is then made again with the numbers).
   */
  private async userOf(spec: StartSpec, image: ImageRecord, create: (user: ContainerUser) => Promise<void>): Promise<ContainerUser> {
    const user = spec.container.user || image.config.user || "";
    const numeric = resolveUser(user, undefined, undefined);
    const named = "error" in numeric;
    const provisional = "error" in numeric ? { uid: 0, gid: 0, additionalGids: [] } : numeric;
    await create(provisional);
    const files = await this.imageFiles(spec.taskId, ["/etc/passwd", "/etc/group"]);
    const resolved = resolveUser(user, files[0], files[1]);
    if ("error" in resolved) {
      if (named) throw new Error(`image "${image.name}": ${resolved.error}`);
      return provisional;
    }
    if (named || resolved.gid !== provisional.gid || resolved.additionalGids.length > 0) {
      await this.o.containerd.deleteContainer(spec.taskId);
      await create(resolved);
    }
    return resolved;
  }

  /** Files of the container's root as its image has them, through its snapshot's mounts (overlay: upper, then each lower). */
  private async imageFiles(taskId: string, paths: string[]): Promise<(string | undefined)[]> {
    const mounts = await this.o.containerd.mounts(taskId);
    const dirs = mounts.flatMap((m) => {
      if (m.type === "bind") return [m.source];
      const opt = (k: string) => m.options.find((o) => o.startsWith(`${k}=`))?.slice(k.length + 1);
      return [opt("upperdir"), ...(opt("lowerdir")?.split(":") ?? [])].filter((d): d is string => !!d);
    });
    return paths.map((path) => readImageFile(dirs, path));
  }

  private track(taskId: string, pid: number, memoryBytes: number, stopSignal: string, memoryDir?: string): void {
    const t: Tracked = { pid, exited: false, stopping: false, oom: false, memoryBytes, stopSignal, ended: undefined! };
    this.tracked.set(taskId, t);
    t.ended = this.follow(taskId, t, memoryDir ?? this.cgroupOf(taskId).memoryDir);
  }

  /**
   * Waits for the task's end. When containerd goes away meanwhile (a
   * restart), the shim keeps the task: it is asked again once containerd
   * answers, and the task ends only when containerd says it did.
   */
  private async follow(taskId: string, t: Tracked, memoryDir: string | undefined): Promise<void> {
    let said = false;
    while (!this.closed) {
      try {
        const { exitStatus } = await this.o.containerd.wait(taskId);
        return this.exited(taskId, t, exitStatus, memoryDir);
      } catch (err) {
        if (!said) this.o.log(`container task ${taskId}: cannot wait for its end (asking again): ${messageOf(err)}`);
        said = true;
      }
      await new Promise((r) => setTimeout(r, FOLLOW_RETRY_MS).unref());
      const info = await this.o.containerd.task(taskId).then(
        (i) => i ?? null,
        () => undefined,
      );
      if (info === null || info?.status === "stopped") return this.exited(taskId, t, info?.exitStatus ?? null, memoryDir);
    }
  }

  private async exited(taskId: string, t: Tracked, code: number | null, memoryDir: string | undefined): Promise<void> {
    if (t.exited || this.closed) return; // closed: the next agent's runner takes its end
    // the cgroup goes with the task: read its OOM kills first
    const oom = t.oom || (memoryDir !== undefined && oomKills(memoryDir) > 0);
    await this.o.containerd.deleteTask(taskId).catch(() => undefined);
    t.exited = true;
    if (t.stopping || this.tracked.get(taskId) !== t) return;
    const reason = oom ? `OOM killed: the task used more than its memory limit${t.memoryBytes ? ` of ${formatBytes(t.memoryBytes)}` : ""}` : undefined;
    const end: ExitReport = { taskId, code, signal: null, ...(reason ? { reason } : {}) };
    try {
      writeFileSync(join(this.taskDir(taskId), END_FILE), JSON.stringify(end)); // for the next agent, should this one stop before reporting it
    } catch {}
    this.emit("exit", end);
  }

  private onEvent(topic: string, event: object): void {
    if (topic !== "/tasks/oom") return;
    const e = event as { containerId?: string; container_id?: string };
    const t = this.tracked.get(e.containerId ?? e.container_id ?? "");
    if (t) t.oom = true;
  }

  /** The image's stop signal (SIGTERM by default), SIGKILL to all its processes after the grace; then its task, container and snapshot go. */
  /**
   * The image's stop signal (SIGTERM by default), SIGKILL to all its processes
   * after the grace; then its task, container and snapshot go. Every wait on
   * containerd is bounded: a container containerd does not remove in time is
   * logged and left (still known) for the next pass.
   */
  async stop(taskId: string): Promise<void> {
    const t = this.tracked.get(taskId);
    if (t && !t.exited) {
      t.stopping = true;
      const ended = t.ended.then(() => undefined);
      await bounded(this.o.containerd.kill(taskId, t.stopSignal).catch(() => undefined), CALL_BOUND_MS);
      if (!(await bounded(ended, this.o.stopGraceMs))) {
        await bounded(this.o.containerd.kill(taskId, "SIGKILL", { all: true }).catch(() => undefined), CALL_BOUND_MS);
        await bounded(ended, KILL_WAIT_MS);
      }
      t.exited = true;
    }
    if (t) await this.removeContainer(taskId, t);
  }

  /**
   * Deletes the task's container (its task and snapshot), at most one deletion
   * at a time; resolves within CALL_BOUND_MS + KILL_WAIT_MS whatever
   * containerd does, saying whether it is gone.
   */
  private async removeContainer(taskId: string, t: Tracked): Promise<boolean> {
    const deletion = t.removal ?? this.o.containerd.deleteContainer(taskId, { waitMs: KILL_WAIT_MS });
    t.removal = deletion;
    void deletion.finally(() => t.removal === deletion && (t.removal = undefined)).catch(() => undefined);
    const removal = deletion.then(
      () => true,
      (err) => {
        this.o.log(`cannot remove container ${taskId} (tried again at the next pass): ${messageOf(err)}`);
        return false;
      },
    );
    if (await bounded(removal, CALL_BOUND_MS + KILL_WAIT_MS)) return removal;
    if (t.removal === deletion) t.removal = undefined; // the next pass asks anew
    this.o.log(`container ${taskId}: containerd did not remove it within ${(CALL_BOUND_MS + KILL_WAIT_MS) / 1000} s (tried again at the next pass)`);
    return false;
  }

  /**
   * Forgets a task: its container and snapshot go, then the task (known
   * until then, so that the reconciler's next pass removes it again should
   * containerd fail); its log stays until it is among the oldest of the forgotten.
   */
  forget(taskId: string): void {
    const t = this.tracked.get(taskId);
    this.unprepared.delete(taskId);
    this.readied.delete(taskId);
    for (const pull of this.pulls.values()) pull.waiting.delete(taskId);
    rmSync(join(this.taskDir(taskId), CONTAINER_MARKER), { force: true });
    if (t) {
      void this.removeContainer(taskId, t).then((gone) => {
        if (!gone || this.tracked.get(taskId) !== t) return;
        this.tracked.delete(taskId);
        this.unified?.remove(taskId);
        pruneEndedLogs(this.dir, (id) => this.tracked.has(id));
      });
    }
    pruneEndedLogs(this.dir, (id) => this.tracked.has(id));
  }

  /** `sh -c TEST` inside the container (its namespaces, root and cgroup), as confined as it, killed at its timeout. */
  check(run: CheckRun): Promise<boolean> {
    const t = this.tracked.get(run.taskId);
    const entry = this.entryOf(run.taskId);
    if (!t || t.exited || !entry) return Promise.resolve(false);
    let args: string[];
    try {
      args = enterArgs(t.pid, entry.confinement, ["sh", "-c", run.test.join(" ")], { container: true });
    } catch {
      return Promise.resolve(false); // it ended meanwhile
    }
    return runEntered(args, run.timeoutMs);
  }

  /** The container's PID 1 (in the node's PID namespace) and how to enter it, for `vipmesh exec`; undefined when it does not run. */
  entry(taskId: string): { pid: number; confinement: Confinement } | undefined {
    const t = this.tracked.get(taskId);
    const entry = this.entryOf(taskId);
    return t && !t.exited && entry ? { pid: t.pid, confinement: entry.confinement } : undefined;
  }

  private entryOf(taskId: string): Entry | undefined {
    try {
      return JSON.parse(readFileSync(join(this.taskDir(taskId), "entry.json"), "utf8")) as Entry;
    } catch {
      return undefined;
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.eventsRetry);
    this.unsubscribe?.();
  }
}

/** Whether `p` settled within `ms` (it runs on either way). */
function bounded(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), ms);
    timer.unref();
  });
  return Promise.race([p.then(() => true), late]).finally(() => clearTimeout(timer));
}

/** The most of an image's /etc/passwd or /etc/group the agent reads. */
const MAX_IMAGE_FILE_BYTES = 1024 * 1024;

/**
 * A file of an image, from its layers top first, as overlayfs shows it: the
 * first layer where the path exists in any form decides (a whiteout, a
 * symlink, a directory hides what older layers have).
 */
export function readImageFile(layers: string[], path: string): string | undefined {
  for (const layer of layers) {
    const found = readLayerFile(layer, path);
    if (found.found) return found.text;
  }
  return undefined;
}

/**
 * A path in one image layer, read as the node's root without trusting the
 * image: no symlink followed at any step (an image's /etc/passwd → the node's
 * /etc/shadow, or /dev/zero), a regular file only (a FIFO would hang the agent),
 * at most MAX_IMAGE_FILE_BYTES. `found`: the layer has the path in some form
 * (a whiteout, a symlink, anything else that is not a readable file reads as
 * absent: `text` undefined); not found, the layers below decide.
 */
export function readLayerFile(layer: string, path: string): { found: false } | { found: true; text?: string } {
  const hidden = { found: true } as const;
  let at = layer;
  const parts = path.split("/").filter(Boolean);
  for (const [i, part] of parts.entries()) {
    at = join(at, part);
    let st: Stats;
    try {
      st = lstatSync(at);
    } catch {
      return { found: false };
    }
    if (i < parts.length - 1 ? !st.isDirectory() : !st.isFile() || st.size > MAX_IMAGE_FILE_BYTES) return hidden;
  }
  let fd: number | undefined;
  try {
    fd = openSync(at, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_IMAGE_FILE_BYTES) return hidden;
    const buf = Buffer.alloc(st.size);
    return { found: true, text: buf.subarray(0, readSync(fd, buf, 0, st.size, 0)).toString("utf8") };
  } catch {
    return hidden;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The stop signal a previous agent kept for the task (the image's). */
function readStopSignal(taskDir: string): string {
  try {
    return readFileSync(join(taskDir, "stop-signal"), "utf8").trim() || "SIGTERM";
  } catch {
    return "SIGTERM";
  }
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** "12.3 MB", as a pull's progress is shown. */
const megabytes = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
