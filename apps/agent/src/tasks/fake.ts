// An in-memory task runtime for unit tests of the agent: tasks "run" until
// stopped or told to exit, health checks answer what the test says, and
// dump() lists them as sorted text.

import { EventEmitter } from "node:events";
import type { ContainerSpec } from "@vipmesh/core";
import type { CheckRun, ExitReport, Preparation, Runtime, StartSpec } from "./runtime.ts";

/** A task as the fake keeps it: its spec without the confinement and container spec, which only a real runtime reads. */
type LeftSpec = Omit<StartSpec, "confinement" | "container">;

export class FakeRuntime extends EventEmitter<{ exit: [ExitReport] }> implements Runtime {
  private readonly tasks = new Map<string, { spec: LeftSpec; running: boolean }>();
  /** What start, stop and forget did, in order ("start t1", "stop t1", …): drain order is checkable. */
  readonly events: string[] = [];
  /** Tasks left running by "a previous agent", adopted by adopt(); `lost` ones ended meanwhile. */
  leftBehind: { spec: LeftSpec; running: boolean }[] = [];
  /** Per task, what its health check answers (default: passes). */
  readonly checks = new Map<string, boolean>();
  /** When set, start() fails with it. */
  startFailure: Error | undefined;

  /** Per image, where readying it stands (default: ready); setImage() moves it on and tells those waiting. */
  private readonly images = new Map<string, Preparation>();
  private readonly waiting: (() => void)[] = [];

  prepare(task: { taskId: string; container: ContainerSpec }, onChange: () => void): Preparation {
    const p = this.images.get(task.container.image ?? "") ?? { state: "ready" };
    if (p.state === "preparing") this.waiting.push(onChange);
    return p;
  }

  setImage(image: string, p: Preparation): void {
    this.images.set(image, p);
    for (const f of this.waiting.splice(0)) f();
  }

  adopt(): { adopted: string[]; lost: string[] } {
    for (const t of this.leftBehind) this.tasks.set(t.spec.taskId, { spec: t.spec, running: t.running });
    const ids = (running: boolean) => this.leftBehind.filter((t) => t.running === running).map((t) => t.spec.taskId);
    return { adopted: ids(true), lost: ids(false) };
  }

  async start(spec: StartSpec): Promise<void> {
    if (this.startFailure) throw this.startFailure;
    this.tasks.set(spec.taskId, { spec: structuredClone(spec), running: true });
    this.events.push(`start ${spec.taskId}`);
  }

  async stop(taskId: string): Promise<void> {
    const t = this.tasks.get(taskId);
    if (!t?.running) return;
    t.running = false;
    this.events.push(`stop ${taskId}`);
  }

  /** The task's process ends by itself with `code`. */
  exit(taskId: string, code: number): void {
    const t = this.tasks.get(taskId);
    if (!t?.running) return;
    t.running = false;
    this.emit("exit", { taskId, code, signal: null });
  }

  isRunning(taskId: string): boolean {
    return this.tasks.get(taskId)?.running === true;
  }

  known(): string[] {
    return [...this.tasks.keys()];
  }

  forget(taskId: string): void {
    if (this.tasks.delete(taskId)) this.events.push(`forget ${taskId}`);
  }

  logFile(taskId: string): string {
    return `/nonexistent/${taskId}.log`;
  }

  async check(run: CheckRun): Promise<boolean> {
    return this.checks.get(run.taskId) ?? true;
  }

  close(): void {}

  dump(): string {
    return [...this.tasks.values()]
      .sort((a, b) => (a.spec.taskId < b.spec.taskId ? -1 : 1))
      .map(({ spec, running }) => `task ${spec.taskId} ${running ? "running" : "ended"} in ${spec.sandbox} as ${spec.hostname}: ${spec.command.join(" ")}\n`)
      .join("");
  }
}
