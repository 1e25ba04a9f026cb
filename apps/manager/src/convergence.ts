// When is a service done? When every desired task runs (healthy, if it has a
// check) with the current spec, nothing else of it is still running, no
// update is in progress, and every agent whose view includes the service has
// acknowledged the view containing its latest change.

import { eligibleNodes, isTaskCurrent, isTerminal, type Service } from "@vipmesh/core";
import type { Dispatcher } from "./dispatcher.ts";
import { isAutoRollback } from "./orchestrator.ts";
import type { ClusterStore } from "./store/cluster-store.ts";

export interface ServiceConvergence {
  desiredTasks: number;
  runningTasks: number;
  nodesTotal: number;
  nodesAcked: number;
  converged: boolean;
  /** The update failed: paused, or rolled back by its failure action. Waiting longer will not help. */
  failed: boolean;
  updateState: string;
  message: string;
}

export function serviceConvergence(store: ClusterStore, dispatcher: Dispatcher, s: Service): ServiceConvergence {
  const desired = s.spec.global
    ? eligibleNodes(store.list("node"), s.spec.taskTemplate).length
    : (s.spec.replicated?.replicas ?? 0);
  let running = 0;
  let unfinished = 0;
  let lastProblem = "";
  for (const t of store.tasksOfService(s.id)) {
    if (isTerminal(t.status.state)) {
      if (t.desiredState === "running" || t.status.state === "failed") lastProblem = t.status.err || t.status.message;
      continue;
    }
    unfinished++;
    const healthy = t.status.health === "" || t.status.health === "healthy";
    if (t.desiredState === "running" && isTaskCurrent(t, s) && t.status.state === "running" && healthy) {
      running++;
    } else if (t.desiredState === "running" && t.status.state === "pending" && t.status.err) {
      lastProblem = t.status.err;
    }
  }
  const { total, acked } = dispatcher.acknowledgement(s.id);
  const updating = s.updateStatus.state === "updating" || s.updateStatus.state === "rollback_started";
  const converged = running === desired && unfinished === desired && acked === total && !updating;
  const failed =
    s.updateStatus.state === "paused" || s.updateStatus.state === "rollback_paused" || (converged && isAutoRollback(s));
  return {
    desiredTasks: desired,
    runningTasks: running,
    nodesTotal: total,
    nodesAcked: acked,
    converged,
    failed,
    updateState: s.updateStatus.state,
    message: converged ? s.updateStatus.message : s.updateStatus.message || lastProblem,
  };
}
