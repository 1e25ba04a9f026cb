// Waiting for a service to converge, printing progress as the manager reports it.

import type { wire } from "@vipmesh/api";
import { formatDuration } from "./duration.ts";
import { CommandFailed } from "./errors.ts";
import type { Io } from "./io.ts";
import type { ManagerConnection } from "./manager-connection.ts";

export const DEFAULT_CONVERGENCE_TIMEOUT_MS = 120_000;

const UPDATE_STATE_WORDS: Record<string, string> = {
  updating: "updating",
  paused: "update paused",
  rollback_started: "rolling back",
  rollback_paused: "rollback paused",
};

/** "2/3 tasks running, 3/3 nodes applied, updating (message)". */
export function progressSummary(c: wire.ServiceConvergence): string {
  const parts = [`${c.runningTasks}/${c.desiredTasks} tasks running`, `${c.nodesAcked}/${c.nodesTotal} nodes applied`];
  const state = UPDATE_STATE_WORDS[c.updateState];
  if (state) parts.push(state);
  return parts.join(", ") + (c.message ? ` (${c.message})` : "");
}

/** On a terminal one line is rewritten in place; elsewhere each new line is printed once. */
export class ProgressPrinter {
  private last = "";

  constructor(private readonly io: Io) {}

  show(line: string): void {
    if (line === this.last) return;
    this.io.stderr(this.io.interactive ? `\r\x1b[2K${line}` : `${line}\n`);
    this.last = line;
  }

  end(): void {
    if (this.io.interactive && this.last) this.io.stderr("\n");
    this.last = "";
  }
}

export interface ConvergenceWait {
  /** What to watch: the service's ID or name. */
  service: string;
  /** How to call it in messages. */
  label: string;
  timeoutMs: number;
}

/**
 * Resolves once the manager reports the service converged. Rejects with
 * CommandFailed when the manager ends the watch with an error (the update
 * failed: paused, or rolled back by its failure action), ends it early, or
 * the timeout passes first.
 */
export function waitForConvergence(conn: ManagerConnection, io: Io, wait: ConvergenceWait): Promise<void> {
  return new Promise((resolve, reject) => {
    const progress = new ProgressPrinter(io);
    const stream = conn.client.watchServiceConvergence({ service: wait.service });
    let latest: wire.ServiceConvergence | undefined;
    let settled = false;

    const finish = (failure?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.cancel(); // our own cancel surfaces as a CANCELLED error, ignored once settled
      progress.end();
      if (failure === undefined) resolve();
      else reject(failure);
    };

    const timer = setTimeout(() => {
      const where = latest ? progressSummary(latest) : "no progress reported yet";
      finish(
        new CommandFailed(
          `timed out after ${formatDuration(wait.timeoutMs)} waiting for ${wait.label} to converge: ${where}`,
        ),
      );
    }, wait.timeoutMs);

    stream.on("data", (c: wire.ServiceConvergence) => {
      latest = c;
      progress.show(`${wait.label}: ${progressSummary(c)}`);
      // a failed update ends the stream with an error, which says why
      if (!c.converged || c.failed) return;
      progress.end();
      io.stderr(`${wait.label}: converged\n`);
      finish();
    });
    stream.on("error", (err) => finish(conn.failure(err)));
    stream.on("end", () =>
      finish(new CommandFailed(`the manager stopped reporting progress before ${wait.label} converged`)),
    );
  });
}
