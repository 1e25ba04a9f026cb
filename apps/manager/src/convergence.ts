// When is a service done? When every desired task runs (healthy, if it has a
// check) with the current spec, nothing else of it is still running, no
// update is in progress, and every agent whose view includes the service has
// acknowledged the view containing its latest change.

import { eligibleNodes, isTaskCurrent, isTaskReady, isTerminal, notFound, precondition, type Service, type VipmeshError } from "@vipmesh/core";
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
      if (t.status.state !== "shutdown" && t.status.state !== "orphaned") lastProblem = t.status.err || t.status.message; // it ended by itself
      continue;
    }
    unfinished++;
    if (isTaskReady(t) && isTaskCurrent(t, s)) {
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

export interface ConvergenceSink {
  write(c: ServiceConvergence): void;
  /** Converged (no error), or why waiting longer will not help. */
  end(error?: VipmeshError): void;
}

/**
 * Reports a service's convergence each time it changes — after commits and
 * acknowledgements, at most once per turn of the event loop — until it
 * converged, failed or was removed. Throws NOT_FOUND for an unknown service;
 * returns a cancel function for a caller that goes away.
 */
export function watchServiceConvergence(
  store: ClusterStore,
  dispatcher: Dispatcher,
  ref: string,
  sink: ConvergenceSink,
): () => void {
  const serviceId = store.mustFind("service", ref).id;
  let last = "";
  let pending = false;
  const stop = () => {
    unsubscribe();
    dispatcher.off("progress", soon);
  };
  const finish = (error?: VipmeshError) => {
    stop();
    sink.end(error);
  };
  const report = () => {
    pending = false;
    const s = store.service(serviceId);
    if (!s) return finish(notFound(`service ${ref} was removed`));
    const c = serviceConvergence(store, dispatcher, s);
    const text = JSON.stringify(c);
    if (text !== last) {
      last = text;
      sink.write(c);
    }
    if (c.failed) return finish(precondition(c.message));
    if (c.converged) return finish();
  };
  const soon = () => {
    if (!pending) {
      pending = true;
      setImmediate(report);
    }
  };
  const unsubscribe = store.subscribe(soon);
  dispatcher.on("progress", soon);
  report();
  return stop;
}
