// The task reconciler (kubelet's job): brings this node's tasks to what the
// view wants through the task runtime — starts, adopts after a restart,
// checks health, drains and stops — and reports each task's state once. Its
// tasks' networking (sandbox, load balancing, DNS) is the network
// reconciler's, reached through TaskNetwork.

import { isTerminal, type Task, taskCommand, taskConfinement, taskHostname, taskRuntime } from "@vipmesh/core";
import type { TaskStatusReport } from "../session/session.ts";
import { HealthChecker } from "./health.ts";
import { NotPrepared, type Runtime } from "./runtime.ts";

/** What the task reconciler needs of the network side. */
export interface TaskNetwork {
  /** Why this node cannot attach the task to its networks now (an encrypted one it cannot carry), or undefined. */
  refusal(t: Task): string | undefined;
  /** Makes the task's sandbox, with its VIPs balanced and names resolved; returns the sandbox's name. */
  attach(t: Task): Promise<string>;
  /** Removes all that was made for the task's networking. */
  detach(taskId: string): Promise<void>;
  sandboxOf(taskId: string): string;
  /** TCP connections still established in the task's sandbox (a draining task waits for them). */
  openConnections(taskId: string): Promise<number>;
}

export interface TaskReconcilerOptions {
  runtime: Runtime;
  network: TaskNetwork;
  report: (taskId: string, status: TaskStatusReport) => void;
  /** Asks for another sync in `ms` (0: as soon as may be). */
  again: (ms: number) => void;
  stopGraceMs: number;
  log: (line: string) => void;
}

export class TaskReconciler {
  /** The last state reported per task in this session, so that each is said once. */
  private readonly reported = new Map<string, string>();
  /** How each task whose process ended, ended. */
  private readonly ended = new Map<string, { state: "complete" | "failed"; err: string }>();
  /** When each task being stopped was first seen so. */
  private readonly stopping = new Map<string, number>();
  private readonly health: HealthChecker;

  constructor(private readonly o: TaskReconcilerOptions) {
    this.health = new HealthChecker((run) => o.runtime.check(run), () => o.again(0));
  }

  /** Adopts what a previous agent left running, and follows exits from now on. */
  start(): void {
    const { adopted, lost } = this.o.runtime.adopt();
    if (adopted.length > 0) this.o.log(`adopted ${adopted.length} running task(s)`);
    for (const taskId of lost) this.ended.set(taskId, { state: "failed", err: "exited while the agent was not running" });
    this.o.runtime.on("exit", ({ taskId, code, signal, reason }) => {
      const err = reason ?? (signal ? `killed by ${signal}` : code === null ? "exited" : `exit status ${code}`);
      this.ended.set(taskId, { state: code === 0 ? "complete" : "failed", err: code === 0 ? "" : err });
      this.o.again(0);
    });
  }

  /** A new session may have missed what the last one said: everything is said again. */
  reportAgain(): void {
    this.reported.clear();
  }

  isRunning(taskId: string): boolean {
    return this.o.runtime.isRunning(taskId);
  }

  /** One pass over the view's tasks: stop (after draining) those told to stop, start those not yet running. */
  async sync(tasks: readonly Task[]): Promise<void> {
    for (const t of tasks) {
      if (isTerminal(t.status.state)) continue;
      if (t.desiredState !== "running") {
        if (this.reported.get(t.id)?.startsWith("shutdown/")) continue;
        if (!(await this.drained(t.id, t.drained === true))) continue; // still serving what it was given: look again soon
        await this.remove(t.id);
        this.report(t.id, "shutdown");
        continue;
      }
      if (this.o.runtime.isRunning(t.id)) {
        this.watchHealth(t, t.status.health); // an adopted task (agent restart) is checked anew, keeping its health meanwhile
        this.report(t.id, "running");
        continue;
      }
      const ended = this.ended.get(t.id);
      if (ended) {
        this.report(t.id, ended.state, ended.err);
        continue;
      }
      // nothing to run, or a network it may not join: rejected, saying why (a container's command comes with its image)
      const run = taskRuntime(t.spec.container) === "container" ? { argv: [] } : taskCommand(t.spec.container);
      const refusal = "error" in run ? run.error : this.o.network.refusal(t);
      if (refusal || "error" in run) {
        this.report(t.id, "rejected", refusal);
        continue;
      }
      // its image, pulled in the background (a runtime this node lacks, or an image not to be had: rejected, saying why)
      const prepared = this.o.runtime.prepare?.({ taskId: t.id, container: t.spec.container }, () => this.o.again(0)) ?? { state: "ready" };
      if (prepared.state === "failed") {
        this.report(t.id, "rejected", prepared.error);
        continue;
      }
      if (prepared.state === "preparing") {
        this.report(t.id, "preparing", "", prepared.message);
        continue;
      }
      await this.startTask(t, run.argv);
    }
  }

  /**
   * Stops and removes what runs for tasks that are not in `wanted`, once
   * drained, and forgets what the view no longer holds. Such a task is in no
   * view's load balancing (say it ran on while its node was marked down, and
   * was replaced elsewhere): it drains as soon as its connections end. Returns
   * the tasks still draining, whose networking stays.
   */
  async sweep(wanted: ReadonlySet<string>, inView: (taskId: string) => boolean): Promise<Set<string>> {
    const draining = new Set<string>();
    for (const taskId of this.o.runtime.known()) {
      if (wanted.has(taskId)) continue;
      if (await this.drained(taskId, true)) await this.remove(taskId);
      else draining.add(taskId);
    }
    for (const map of [this.reported, this.ended, this.stopping]) {
      for (const taskId of map.keys()) if (!inView(taskId) && !draining.has(taskId)) map.delete(taskId);
    }
    return draining;
  }

  /** Stops the task, then removes its networking. */
  async remove(taskId: string): Promise<void> {
    await this.o.runtime.stop(taskId);
    this.health.forget(taskId);
    await this.o.network.detach(taskId);
    this.o.runtime.forget(taskId);
  }

  close(): void {
    this.o.runtime.close();
    this.health.close();
  }

  private async startTask(t: Task, argv: string[]): Promise<void> {
    this.report(t.id, "starting");
    try {
      const sandbox = await this.o.network.attach(t); // VIPs work from the task's first instant
      await this.o.runtime.start({
        taskId: t.id,
        serviceName: t.serviceName,
        sandbox,
        hostname: taskHostname(t),
        command: argv,
        env: t.spec.container.env,
        container: t.spec.container,
        confinement: taskConfinement(t.spec),
      });
      this.watchHealth(t); // reported "starting" with "running": not ready until the check passes
      this.report(t.id, "running");
    } catch (err) {
      if (err instanceof NotPrepared) {
        this.o.log(`task ${t.id}: ${err.message}`);
        this.o.again(0); // prepared again at the next pass
        return;
      }
      // one task that cannot start must not hold up the others: it fails, and the manager replaces it
      const why = err instanceof Error ? err.message : String(err);
      this.o.log(`task ${t.id} cannot start: ${why}`);
      this.ended.set(t.id, { state: "failed", err: `cannot start: ${why}` });
      this.report(t.id, "failed", `cannot start: ${why}`);
    }
  }

  /** `message`: what the state says beyond its name (a pull's progress), said again as it changes. */
  private report(taskId: string, state: string, err = "", message = state): void {
    const health = this.health.health(taskId);
    const said = `${state}/${health}${message === state ? "" : `/${message}`}`;
    if (this.reported.get(taskId) === said) return;
    this.reported.set(taskId, said);
    this.o.report(taskId, { state, message, err, health });
  }

  /**
   * Graceful drain: a task told to stop keeps running until no agent balances
   * new connections to it (the manager marks it drained once every agent that
   * saw its service acknowledged the view without it) and its established
   * connections have ended — each bounded by the stop grace period, then it
   * stops anyway. Never a fixed sleep. `unbalanced`: no agent balances to it.
   */
  private async drained(taskId: string, unbalanced: boolean): Promise<boolean> {
    if (!this.o.runtime.isRunning(taskId)) return true;
    const since = this.stopping.get(taskId) ?? Date.now();
    this.stopping.set(taskId, since);
    const left = since + this.o.stopGraceMs - Date.now();
    if (left <= 0) return true;
    if (unbalanced && (await this.o.network.openConnections(taskId)) === 0) return true;
    this.o.again(Math.min(left, 200));
    return false;
  }

  private watchHealth(t: Task, known?: Task["status"]["health"]): void {
    const check = t.spec.container.healthcheck;
    if (check?.test.length) this.health.watch({ taskId: t.id, sandbox: this.o.network.sandboxOf(t.id), check }, known);
  }
}
