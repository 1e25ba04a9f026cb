// The node agent: converges this node to its assignment. Assignments only
// record what is wanted (in the session's view) and ask for a sync; one sync
// loop, driven by a bounded-frequency runner, runs the network reconciler and
// the task reconciler, and acknowledges the view version it applied. It
// refuses to run before the first full assignment, and a restarted agent
// adopts what is still wanted instead of flushing (docs/ARCHITECTURE.md).

import { emptyDelta, isTerminal, type Resources, taskName, taskRuntime } from "@vipmesh/core";
import type { NodeIdentity } from "@vipmesh/api";
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { SANDBOX_DESCRIPTORS } from "./dns/server.ts";
import { openFilesLimit } from "./exec/limits.ts";
import { type ImageStore, type ImageUser, NodeImages } from "./images/node-images.ts";
import { type NetworkDrivers, NetworkReconciler } from "./network/reconciler.ts";
import { BoundedFrequencyRunner } from "./runner.ts";
import { type AgentSession, ManagerSession } from "./session/session.ts";
import { serveLogRequest } from "./tasks/logs.ts";
import { CGROUPS_RECORD, TaskCgroups } from "./tasks/cgroups.ts";
import { ProcessRunner } from "./tasks/process-runner.ts";
import { TaskReconciler } from "./tasks/reconciler.ts";
import type { Runtime } from "./tasks/runtime.ts";
import { TaskRuntimes } from "./tasks/runtimes.ts";

/** SIGTERM to SIGKILL, when stopping a task, unless the agent is told otherwise. */
export const DEFAULT_STOP_GRACE_MS = 10_000;

export interface AgentOptions extends NetworkDrivers {
  /** The managers' dispatcher addresses, tried in turn (see session/managers.ts). */
  managers: readonly string[];
  /** The node's certificate, renewed while the agent runs; undefined: plaintext to a manager started with --insecure. */
  identity?: NodeIdentity;
  advertiseAddr: string;
  hostname: string;
  stateDir: string;
  /** Prefix of this agent's sandbox namespaces (the lab makes it unique per lab and node). */
  sandboxPrefix: string;
  binDir: string;
  stopGraceMs?: number;
  /** The cgroup under the agent's own that holds one per task (with ProcessRunner); absent: no task cgroups. */
  cgroupParent?: string;
  /** Paths of the node no task may see, besides those every task is kept from (with ProcessRunner). */
  hidePaths?: string[];
  /** Runs process tasks; default: processes in their sandboxes (ProcessRunner). */
  runtime?: Runtime;
  /** Runs image tasks as containers (a ContainerRunner over containerd); absent: `noContainers` says why they are rejected. */
  containers?: Runtime;
  noContainers?: string;
  /** The node's images (the containerd client): the manager's image calls and the image GC; absent: image calls are refused. */
  images?: ImageStore;
  /** An image no task here used for this long is removed; default a day (DEFAULT_IMAGE_GC_AFTER_MS). */
  imageGcAfterMs?: number;
  /** What this node offers tasks' reservations, told to the manager. */
  resources?: Resources;
  /** The session with the manager; default: a ManagerSession to `managers` (unit tests give a FakeSession). */
  session?: AgentSession;
  log?: (line: string) => void;
}

export class Agent {
  readonly session: AgentSession;
  private readonly runner: BoundedFrequencyRunner;
  private readonly network: NetworkReconciler;
  private readonly tasks: TaskReconciler;
  private readonly runtime: Runtime;
  private readonly images: NodeImages | undefined;
  private readonly log: (line: string) => void;
  /** "cleaning" once the manager removed this node: it converges to nothing; "idle" once nothing is left. */
  private removal: "no" | "cleaning" | "idle" = "no";

  constructor(private readonly o: AgentOptions) {
    this.log = o.log ?? ((line) => console.error(`agent ${o.hostname}: ${line}`));
    mkdirSync(o.stateDir, { recursive: true });
    this.session =
      o.session ??
      new ManagerSession({
        managers: o.managers,
        credentials: o.identity ? { identity: o.identity.source } : "insecure",
        ...(o.identity ? { nodeId: o.identity.nodeId } : {}),
        hostname: o.hostname,
        advertiseAddr: o.advertiseAddr,
        stateDir: o.stateDir,
        // what the manager checks each service's LB settings against
        ...(o.loadBalancer ? { dataplane: o.loadBalancer.dataplane } : {}),
        // what the manager places here: image tasks only with containers; reservations within these
        runtimes: o.containers ? ["process", "container"] : ["process"],
        ...(o.resources ? { resources: o.resources } : {}),
        log: this.log,
      });
    const stopGraceMs = o.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
    const processes =
      o.runtime ??
      new ProcessRunner({
        stateDir: o.stateDir,
        binDir: o.binDir,
        stopGraceMs,
        hide: o.hidePaths ?? [],
        ...(o.cgroupParent ? { cgroups: new TaskCgroups({ parent: o.cgroupParent, record: join(o.stateDir, CGROUPS_RECORD), log: this.log }) } : {}),
      });
    const runtime = new TaskRuntimes({
      process: processes,
      ...(o.containers ? { container: o.containers } : {}),
      ...(o.noContainers ? { noContainers: o.noContainers } : {}),
    });
    this.runtime = runtime;
    const again = (ms: number) => (ms <= 0 ? this.runner.run() : setTimeout(() => this.runner.run(), ms).unref());
    this.network = new NetworkReconciler({ ...o, view: this.session.view, again, log: this.log });
    this.tasks = new TaskReconciler({ runtime, network: this.network, report: (id, s) => this.session.report(id, s), again, stopGraceMs, log: this.log });
    // a task's log can grow while its process runs or while it is still in the view (it may yet start)
    const logs = {
      logFile: (taskId: string) => runtime.logFile(taskId),
      growing: (taskId: string) => runtime.isRunning(taskId) || this.session.view.tasks.has(taskId),
    };
    this.session.serveLogs((req, send, signal) => serveLogRequest(req, logs, send, signal));
    if (o.images) {
      this.images = new NodeImages({
        store: o.images,
        stateDir: o.stateDir,
        ...(o.imageGcAfterMs !== undefined ? { gcAfterMs: o.imageGcAfterMs } : {}),
        users: () => this.imageUsers(),
        log: this.log,
      });
      this.session.serveImages(this.images);
    }
    this.runner = new BoundedFrequencyRunner(() => this.sync(), { minIntervalMs: 20, maxIntervalMs: 30_000, retryMs: 1000 }, (err) =>
      this.log(`sync failed, retrying: ${err instanceof Error ? err.message : String(err)}`),
    );
  }

  start(): void {
    // what tasks can make the agent hold is bounded per sandbox: how many sandboxes the limit carries
    const files = openFilesLimit();
    const open = readdirSync("/proc/self/fd").length;
    const room = Number.isFinite(files.soft) ? `room for ${Math.floor((files.soft - open) / SANDBOX_DESCRIPTORS)}` : "no limit to the number of";
    this.log(`open files: up to ${files.soft} (hard limit ${files.hard}), ${open} open: ${room} task sandboxes at ${SANDBOX_DESCRIPTORS} descriptors each`);
    this.tasks.start();
    this.session.on("open", () => this.tasks.reportAgain());
    this.session.on("view", (delta, full) => {
      this.network.onView(delta, full);
      this.runner.run();
    });
    this.session.on("removed", (why) => this.onRemoved(why));
    this.session.start();
    this.o.identity?.startRenewal();
    this.runner.start();
    this.images?.start();
  }

  async stop(): Promise<void> {
    this.runner.stop();
    this.images?.stop();
    this.o.identity?.stop();
    this.session.stop();
    this.tasks.close();
    await this.network.close();
  }

  /** The tasks that use an image: those the node is to run, and those whose container is still here; undefined before the first assignment. */
  private imageUsers(): ImageUser[] | undefined {
    if (this.session.version === 0) return undefined;
    const known = new Set(this.runtime.known());
    return [...this.session.view.tasks.values()]
      .filter((t) => taskRuntime(t.spec.container) === "container" && (!isTerminal(t.status.state) || known.has(t.id)))
      .map((t) => ({ task: taskName(t), image: t.spec.container.image ?? "" }));
  }

  /**
   * Removed from the cluster (told by the session that ends, or by a refused
   * registration): the session does not come back; the agent converges to an
   * empty view, as the normal way down — every task drained and stopped,
   * every sandbox, overlay, LB and DNS entry removed — and then stays up idle.
   * It does not exit: a supervisor would start it again, and that agent would
   * join anew, undoing the removal behind the operator's back.
   */
  private onRemoved(why: string): void {
    this.log(`${why}. Stopping every task and removing all the cluster set up on this node; the agent then stays idle (start it again, with --token-file, to join as a new node)`);
    this.o.identity?.forget();
    this.removal = "cleaning";
    this.network.onView(emptyDelta(), true);
    this.runner.run();
  }

  /** One pass: networks, then tasks to stop and start, then leftovers; acknowledges what it applied. */
  private async sync(): Promise<void> {
    const { view, version, nodeId } = this.session;
    if (version === 0 && this.removal === "no") return; // nothing to converge to before the first full assignment
    // the view changes while this sync awaits: act on the tasks the networks were made for,
    // and let the next sync (the runner runs again) take what arrives meanwhile
    const tasks = [...view.tasks.values()];
    await this.network.sync(nodeId, this.session.encryption, tasks, (id) => this.tasks.isRunning(id));
    await this.tasks.sync(tasks);
    const wanted = new Set(tasks.filter((t) => !isTerminal(t.status.state)).map((t) => t.id));
    const draining = await this.tasks.sweep(wanted, (id) => view.tasks.has(id));
    await this.network.sweep(tasks, new Set([...wanted, ...draining]));
    this.session.ack(version);
    if (this.removal === "cleaning" && this.runtime.known().length === 0) {
      this.removal = "idle";
      this.log("removed from the cluster: no task and nothing of the cluster left on this node; idle");
    }
  }
}
