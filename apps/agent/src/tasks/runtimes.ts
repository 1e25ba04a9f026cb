// One Runtime over this node's runtimes, for the task reconciler: a task
// goes to the one core's taskRuntime names for its spec (a host process, or
// a container through containerd), and every later call about it to the one
// that holds it. A node without containerd keeps rejecting image tasks,
// saying why.

import { EventEmitter } from "node:events";
import { type ContainerSpec, taskRuntime } from "@vipmesh/core";
import type { CheckRun, ExitReport, Preparation, Runtime, StartSpec } from "./runtime.ts";

export interface TaskRuntimesOptions {
  process: Runtime;
  /** Containers through containerd; absent: `noContainers` says why image tasks are rejected. */
  container?: Runtime;
  noContainers?: string;
}

export class TaskRuntimes extends EventEmitter<{ exit: [ExitReport] }> implements Runtime {
  /** Which runtime holds each task it knows. */
  private readonly holder = new Map<string, Runtime>();

  constructor(private readonly o: TaskRuntimesOptions) {
    super();
    for (const r of this.all()) r.on("exit", (e: ExitReport) => this.emit("exit", e));
  }

  adopt(): { adopted: string[]; lost: string[] } {
    const adopted: string[] = [];
    const lost: string[] = [];
    for (const r of this.all()) {
      const found = r.adopt();
      for (const id of [...found.adopted, ...found.lost]) this.holder.set(id, r);
      adopted.push(...found.adopted);
      lost.push(...found.lost);
    }
    return { adopted, lost };
  }

  prepare(task: { taskId: string; container: ContainerSpec }, onChange: () => void): Preparation {
    if (taskRuntime(task.container) === "process") return { state: "ready" };
    if (!this.o.container) return { state: "failed", error: this.noContainers(task.container) };
    return this.o.container.prepare?.(task, onChange) ?? { state: "ready" };
  }

  async start(spec: StartSpec): Promise<void> {
    const runtime = taskRuntime(spec.container) === "container" ? this.o.container : this.o.process;
    if (!runtime) throw new Error(this.noContainers(spec.container));
    this.holder.set(spec.taskId, runtime);
    await runtime.start(spec);
  }

  stop(taskId: string): Promise<void> {
    return this.of(taskId)?.stop(taskId) ?? Promise.resolve();
  }

  isRunning(taskId: string): boolean {
    return this.of(taskId)?.isRunning(taskId) ?? false;
  }

  known(): string[] {
    return [...new Set(this.all().flatMap((r) => r.known()))];
  }

  forget(taskId: string): void {
    this.of(taskId)?.forget(taskId);
    this.holder.delete(taskId);
  }

  /** Both runtimes keep a task's log at the same path. */
  logFile(taskId: string): string {
    return (this.of(taskId) ?? this.o.process).logFile(taskId);
  }

  check(run: CheckRun): Promise<boolean> {
    return this.of(run.taskId)?.check(run) ?? Promise.resolve(false);
  }

  close(): void {
    for (const r of this.all()) r.close();
  }

  private of(taskId: string): Runtime | undefined {
    return this.holder.get(taskId) ?? this.all().find((r) => r.known().includes(taskId));
  }

  private all(): Runtime[] {
    return this.o.container ? [this.o.process, this.o.container] : [this.o.process];
  }

  private noContainers(container: ContainerSpec): string {
    return `this node has no container runtime for image "${container.image?.trim()}": ${this.o.noContainers ?? "run containerd and give the agent --containerd-socket"}`;
  }
}
