// /tasks: list (with Docker's filters, `docker service ps` and the CLI's
// convergence display use them), inspect, and one task's logs.

import { isTaskCurrent, taskName, VipmeshError } from "@vipmesh/core";
import { matchesAny, matchesLabels, parseFilters } from "../filters.ts";
import { type Ctx, HttpError, type Route } from "../http.ts";
import { taskJson } from "../json/task.ts";
import type { ClusterOps } from "../ops.ts";
import { streamLogs } from "./logs.ts";

const TASK_FILTERS = new Set(["id", "name", "service", "node", "label", "desired-state", "_up-to-date"]);
const DESIRED_STATES = new Set(["running", "shutdown", "accepted"]);

/** Docker's task name: `<service>.<slot>`, or `<service>.<node ID>` for a global service's. */

/** Network ID → name, for the tasks' attachments. */
const networkNames = (ops: ClusterOps): Map<string, string> => new Map(ops.listNetworks().map((n) => [n.id, n.spec.name]));

/** The IDs the refs name (ID, name or ID prefix); a ref naming nothing matches no task (Docker's filters never 404). */
function resolve(refs: readonly string[] | undefined, find: (ref: string) => string): Set<string> | undefined {
  if (!refs || refs.length === 0) return undefined;
  const ids = new Set<string>();
  for (const ref of refs) {
    try {
      ids.add(find(ref));
    } catch (err) {
      if (!(err instanceof VipmeshError && err.code === "not_found")) throw err;
    }
  }
  return ids;
}

function listTasks(ctx: Ctx) {
  const f = parseFilters(ctx.query, TASK_FILTERS);
  for (const d of f.get("desired-state") ?? []) {
    if (!DESIRED_STATES.has(d)) throw new HttpError(400, `invalid filter 'desired-state=${d}': running, shutdown or accepted`);
  }
  const { ops } = ctx;
  const services = new Map(ops.listServices().map((s) => [s.id, s]));
  const serviceIds = resolve(f.get("service"), (ref) => ops.inspectService(ref).id);
  const nodeIds = resolve(f.get("node"), (ref) => ops.managers().find((m) => ref === m.id || ref === m.hostname)?.id ?? ops.inspectNode(ref).id);
  const upToDate = (f.get("_up-to-date") ?? []).some((v) => v === "true" || v === "1");
  const tasks = ops.listTasks().filter((t) => {
    const service = services.get(t.serviceId);
    return (
      (!serviceIds || serviceIds.has(t.serviceId)) &&
      (!nodeIds || nodeIds.has(t.nodeId)) &&
      matchesAny(f.get("id"), (v) => t.id.startsWith(v)) &&
      matchesAny(f.get("name"), (v) => taskName(t).startsWith(v)) &&
      matchesAny(f.get("desired-state"), (v) => v === t.desiredState) &&
      matchesLabels(service?.spec.annotations.labels ?? {}, f.get("label")) &&
      // current as a rolling update judges it: a rollback keeps tasks already on the spec it goes back to
      (!upToDate || (service !== undefined && isTaskCurrent(t, service)))
    );
  });
  const names = networkNames(ops);
  return tasks.map((t) => taskJson(t, names));
}

export const taskRoutes: Route[] = [
  { method: "GET", path: "/tasks", op: "ListTasks", handle: listTasks },
  {
    method: "GET",
    path: "/tasks/{id}",
    op: "ListTasks",
    handle: (ctx) => taskJson(ctx.ops.inspectTask(ctx.params.id!), networkNames(ctx.ops)),
  },
  {
    method: "GET",
    path: "/tasks/{id}/logs",
    op: "ServiceLogs",
    handle: (ctx) => {
      const t = ctx.ops.inspectTask(ctx.params.id!);
      streamLogs(ctx, t.serviceId, t.id);
    },
  },
];
