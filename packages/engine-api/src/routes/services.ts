// /services: create, list, inspect, update (and rollback), remove, logs.
// Thin: Docker's JSON in and out (json/service.ts), the cluster's operations
// (ops) between; every rule about a spec is the cluster's.

import { type Service, type Task, invalid, serviceMode } from "@vipmesh/core";
import { matchesAny, matchesLabels, parseFilters } from "../filters.ts";
import { type Ctx, HttpError, type Route, sendJson } from "../http.ts";
import { type ServiceStatus, serviceJson, serviceSpecFromDocker } from "../json/service.ts";
import { streamLogs } from "./logs.ts";

const SERVICE_FILTERS = new Set(["id", "name", "label", "mode"]);

/** Docker's ServiceStatus: running tasks, and what should run (replicas; a global service's tasks meant to run). */
export function serviceStatus(s: Service, tasks: readonly Task[]): ServiceStatus {
  const own = tasks.filter((t) => t.serviceId === s.id);
  return {
    RunningTasks: own.filter((t) => t.status.state === "running" && t.desiredState === "running").length,
    DesiredTasks: s.spec.global ? own.filter((t) => t.desiredState === "running").length : (s.spec.replicated?.replicas ?? 0),
    CompletedTasks: 0,
  };
}

function listServices(ctx: Ctx) {
  const filters = parseFilters(ctx.query, SERVICE_FILTERS);
  for (const m of filters.get("mode") ?? []) {
    if (m !== "replicated" && m !== "global") throw new HttpError(400, `invalid filter 'mode=${m}': replicated or global`);
  }
  const services = ctx.ops
    .listServices()
    .filter(
      (s) =>
        matchesAny(filters.get("id"), (v) => s.id.startsWith(v)) &&
        matchesAny(filters.get("name"), (v) => s.spec.annotations.name.startsWith(v)) &&
        matchesLabels(s.spec.annotations.labels, filters.get("label")) &&
        matchesAny(filters.get("mode"), (v) => v === serviceMode(s.spec)),
    );
  const tasks = ctx.query.get("status") === "true" || ctx.query.get("status") === "1" ? ctx.ops.listTasks() : undefined;
  return services.map((s) => serviceJson(s, tasks ? { status: serviceStatus(s, tasks) } : {}));
}

/** ?version=N: the Version.Index the caller read (an update without one would overwrite blindly). */
function versionOf(ctx: Ctx): number {
  const raw = ctx.query.get("version");
  if (raw === null || raw === "") throw invalid("the version query parameter is required: the service's Version.Index as read (docker service inspect)");
  const version = Number(raw);
  if (!Number.isInteger(version) || version < 0) throw invalid(`invalid service version '${raw}': a whole number`);
  return version;
}

async function updateService(ctx: Ctx) {
  const id = ctx.params.id!;
  const version = versionOf(ctx);
  const rollback = ctx.query.get("rollback");
  if (rollback !== null && rollback !== "" && rollback !== "previous") {
    throw invalid(`rollback=${rollback}: the only rollback is "previous"`);
  }
  if (rollback === "previous") {
    // the CLI sends the spec it read with the version: a stale one is refused as an update's
    await ctx.ops.rollbackService(id, version);
    return { Warnings: [] };
  }
  const { spec, warnings } = serviceSpecFromDocker(await ctx.body(), ctx.ops.inspectService(id).spec);
  await ctx.ops.updateService(id, version, spec);
  return { Warnings: warnings };
}

export const serviceRoutes: Route[] = [
  {
    method: "POST",
    path: "/services/create",
    op: "CreateService",
    async handle(ctx) {
      const { spec, warnings } = serviceSpecFromDocker(await ctx.body());
      const s = await ctx.ops.createService(spec);
      sendJson(ctx.res, 201, { ID: s.id, ...(warnings.length > 0 ? { Warnings: warnings } : {}) });
    },
  },
  { method: "GET", path: "/services", op: "ListServices", handle: listServices },
  {
    method: "GET",
    path: "/services/{id}",
    op: "InspectService",
    handle: (ctx) => serviceJson(ctx.ops.inspectService(ctx.params.id!), { insertDefaults: ctx.query.get("insertDefaults") === "true" }),
  },
  { method: "POST", path: "/services/{id}/update", op: "UpdateService", handle: updateService },
  {
    method: "DELETE",
    path: "/services/{id}",
    op: "RemoveService",
    async handle(ctx) {
      await ctx.ops.removeService(ctx.params.id!);
      // Docker answers 200 with no body
      ctx.res.writeHead(200, { "Content-Length": 0 });
      ctx.res.end();
    },
  },
  {
    method: "GET",
    path: "/services/{id}/logs",
    op: "ServiceLogs",
    handle: (ctx) => streamLogs(ctx, ctx.ops.inspectService(ctx.params.id!).id),
  },
];
