// What the task reconciler asks of whatever runs tasks: confined host
// processes (process-runner.ts) and OCI containers through containerd
// (container-runner.ts), one Runtime over both (runtimes.ts). A runtime
// starts a task inside its sandbox, stops it (SIGTERM, then SIGKILL after the
// grace), runs its health checks in the same context, and outlives an agent
// restart: a new agent adopts what still runs.

import type { Confinement, ContainerSpec } from "@vipmesh/core";

export interface StartSpec {
  taskId: string;
  serviceName: string;
  /** The sandbox (network namespace) the task runs in. */
  sandbox: string;
  hostname: string;
  /** A process task's argv (a container's comes from its image and `container`). */
  command: string[];
  env: string[];
  /** The task's container spec: a container takes its image, command, args, dir and user from it. */
  container: ContainerSpec;
  /** What the task may do on its node (core's taskConfinement). */
  confinement: Confinement;
}

/** `reason`: why it ended, when the runtime knows better than its status (an OOM kill). */
export type ExitReport = { taskId: string; code: number | null; signal: string | null; reason?: string };

/** One health check run: `sh -c TEST` in the task's context, as confined as the task. */
export interface CheckRun {
  taskId: string;
  sandbox: string;
  test: string[];
  timeoutMs: number;
}

/** start() found what prepare readied gone (an image removed meanwhile): the task prepares again rather than failing. */
export class NotPrepared extends Error {}

/** Where readying a task's image stands: ready to start, still coming (what is done so far), or not to be had (why). */
export type Preparation = { state: "ready" } | { state: "preparing"; message: string } | { state: "failed"; error: string };

export interface Runtime {
  /**
   * Readies what a task needs before it starts (a container's image), in the
   * background; says where that stands now, and calls `onChange` when it
   * moves on. Absent: nothing to ready.
   */
  prepare?(task: { taskId: string; container: ContainerSpec }, onChange: () => void): Preparation;
  /** Takes over the tasks a previous agent left running; `lost`: those that ended while no agent ran. */
  adopt(): { adopted: string[]; lost: string[] };
  start(spec: StartSpec): Promise<void>;
  /** SIGTERM, then SIGKILL after the stop grace; resolves once the task is gone. */
  stop(taskId: string): Promise<void>;
  isRunning(taskId: string): boolean;
  /** Every task this runtime tracks, running or ended and not yet forgotten. */
  known(): string[];
  /** Forgets an ended task (its log may stay a while, for `service logs`). */
  forget(taskId: string): void;
  logFile(taskId: string): string;
  /** Runs a health check; true when it exits 0 within its timeout. */
  check(run: CheckRun): Promise<boolean>;
  /** A task's process ended by itself. */
  on(event: "exit", listener: (exit: ExitReport) => void): unknown;
  close(): void;
}
