// What the task reconciler asks of whatever runs tasks: processes today
// (process-runner.ts), containers later. A runtime starts a task inside its
// sandbox, stops it (SIGTERM, then SIGKILL after the grace), runs its health
// checks in the same context, and outlives an agent restart: a new agent adopts
// what still runs.

import type { Confinement } from "@vipmesh/core";

export interface StartSpec {
  taskId: string;
  serviceName: string;
  /** The sandbox (network namespace) the task runs in. */
  sandbox: string;
  hostname: string;
  command: string[];
  env: string[];
  /** What the task may do on its node (core's taskConfinement). */
  confinement: Confinement;
}

export type ExitReport = { taskId: string; code: number | null; signal: string | null };

/** One health check run: `sh -c TEST` in the task's context, as confined as the task. */
export interface CheckRun {
  taskId: string;
  sandbox: string;
  test: string[];
  timeoutMs: number;
}

export interface Runtime {
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
