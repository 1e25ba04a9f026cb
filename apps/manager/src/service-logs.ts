// `vipmesh service logs`: the output of a service's tasks, asked of the agents
// that run (or ran) them — one request per node — and relayed as it comes:
// whole lines in task-log.ts's form (time, stream, text), which the Engine
// API and the CLI parse.

import { sinceTime } from "@vipmesh/api";
import { invalid } from "@vipmesh/core";
import type { LogRequest, LogSink } from "@vipmesh/engine-api";
import type { NodeLogs } from "./ha/peer-logs.ts";
import type { ClusterStore } from "./store/cluster-store.ts";

/**
 * Relays the logs of the service's tasks that were given to a node, terminal
 * ones still in the store included. Throws NOT_FOUND for an unknown service;
 * returns a cancel function for a caller that goes away.
 */
export function relayServiceLogs(
  store: ClusterStore,
  logs: NodeLogs,
  req: LogRequest,
  sink: LogSink,
): () => void {
  const service = store.mustFind("service", req.service);
  const since = req.since ? sinceTime(req.since) : "";
  if (since === undefined) throw invalid(`since "${req.since}" is not a time: give unix seconds or an RFC 3339 time`);
  const tasks = [...store.tasksOfService(service.id)]
    .filter((t) => t.nodeId !== "" && (!req.taskIds || req.taskIds.includes(t.id)))
    .sort((a, b) => a.slot - b.slot || a.createdAt.localeCompare(b.createdAt));
  const byNode = new Map<string, string[]>();
  for (const t of tasks) byNode.set(t.nodeId, [...(byNode.get(t.nodeId) ?? []), t.id]);

  const open = new Set(tasks.map((t) => t.id));
  const slots = new Map(tasks.map((t) => [t.id, t.slot]));
  const cancels: (() => void)[] = [];
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    for (const cancel of cancels) cancel();
  };

  if (open.size === 0) {
    end();
    sink.end();
    return () => {};
  }
  for (const [nodeId, taskIds] of byNode) {
    // a node without a session answers at once, with an error for each of its tasks
    const cancel = logs.request(nodeId, { taskIds, follow: req.follow, tail: req.tail, ...(since ? { since } : {}) }, (d) => {
      if (ended) return;
      const chunk = { taskId: d.taskId, slot: slots.get(d.taskId) ?? 0, nodeId };
      if (d.data && d.data.length > 0) sink.write({ ...chunk, data: d.data });
      if (d.error) sink.write({ ...chunk, error: d.error });
      if (!d.eof) return;
      open.delete(d.taskId);
      if (open.size === 0) {
        end();
        sink.end();
      }
    });
    cancels.push(cancel);
  }
  return end;
}
