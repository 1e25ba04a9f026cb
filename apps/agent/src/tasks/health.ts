// Health checks, as Docker runs them: the check command runs inside the task's
// sandbox every interval; one success makes the task healthy, `retries`
// failures in a row make it unhealthy; failures during the start period do not
// count. The agent reports each change, and a task enters load balancing (and,
// later, DNS) only while healthy: the view's `ready` says so on every node.

import type { HealthCheck, TaskHealth } from "@vipmesh/core";
import type { CheckRun } from "./runtime.ts";

export interface HealthTarget {
  taskId: string;
  sandbox: string;
  check: HealthCheck;
}

interface Probe {
  target: HealthTarget;
  health: TaskHealth;
  failures: number;
  startedAt: number;
  timer: NodeJS.Timeout;
}

export class HealthChecker {
  private readonly probes = new Map<string, Probe>();

  /** `runCheck`: the task runtime's (the check runs where the task does). */
  constructor(
    private readonly runCheck: (run: CheckRun) => Promise<boolean>,
    private readonly onChange: (taskId: string, health: TaskHealth) => void,
  ) {}

  /**
   * Starts checking a task (once; calling again for the same task does
   * nothing). `known`: the health it had before this process (an adopted task
   * after an agent restart) stands until a check says otherwise, so that a
   * restart does not take healthy tasks out of load balancing.
   */
  watch(target: HealthTarget, known?: TaskHealth): void {
    if (this.probes.has(target.taskId)) return;
    const kept = known === "healthy" || known === "unhealthy";
    const probe: Probe = { target, health: kept ? known : "starting", failures: 0, startedAt: kept ? 0 : Date.now(), timer: undefined! };
    this.probes.set(target.taskId, probe);
    if (!kept) this.onChange(target.taskId, "starting");
    const tick = async () => {
      const ok = await this.runCheck({ taskId: target.taskId, sandbox: target.sandbox, test: target.check.test, timeoutMs: target.check.timeoutMs });
      if (!this.probes.has(target.taskId)) return;
      const inStartPeriod = Date.now() - probe.startedAt < target.check.startPeriodMs;
      probe.failures = ok ? 0 : inStartPeriod ? probe.failures : probe.failures + 1;
      const health: TaskHealth = ok ? "healthy" : probe.failures >= target.check.retries ? "unhealthy" : probe.health;
      if (health !== probe.health) {
        probe.health = health;
        this.onChange(target.taskId, health);
      }
      probe.timer = setTimeout(() => void tick(), target.check.intervalMs);
    };
    probe.timer = setTimeout(() => void tick(), 0);
  }

  health(taskId: string): TaskHealth {
    return this.probes.get(taskId)?.health ?? "";
  }

  forget(taskId: string): void {
    const p = this.probes.get(taskId);
    if (p) clearTimeout(p.timer);
    this.probes.delete(taskId);
  }

  close(): void {
    for (const id of [...this.probes.keys()]) this.forget(id);
  }
}
