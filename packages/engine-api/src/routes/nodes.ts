// /nodes: the agents' nodes, and the managers (the leader marked).

import { invalid, type Node, VipmeshError } from "@vipmesh/core";
import { matchesAny, matchesLabels, parseFilters } from "../filters.ts";
import { type Ctx, type Route, sendNoContent } from "../http.ts";
import { managerNodeJson, nodeJson, nodeSpecFromDocker } from "../json/node.ts";
import type { ManagerNode } from "../ops.ts";

const managerIsFixed = (m: ManagerNode) =>
  invalid(`node ${m.hostname} is vipmesh's manager: it runs no tasks and cannot be updated, demoted or removed through the Engine API`);

/** The node `ref` names: a manager (exact ID or hostname, else a unique ID prefix) or an agent's. */
function resolve(ctx: Ctx, ref: string): { manager: ManagerNode } | { node: Node } {
  const managers = ctx.ops.managers();
  const exact = managers.find((m) => ref === m.id || ref === m.hostname);
  if (exact) return { manager: exact };
  try {
    return { node: ctx.ops.inspectNode(ref) };
  } catch (err) {
    const prefixed = managers.filter((m) => m.id.startsWith(ref));
    if (err instanceof VipmeshError && err.code === "not_found" && prefixed.length === 1) return { manager: prefixed[0]! };
    throw err;
  }
}

/** Docker's node filters. */
const NODE_FILTERS = new Set(["id", "name", "role", "membership", "node.label", "label"]);

function list(ctx: Ctx) {
  const f = parseFilters(ctx.query, NODE_FILTERS);
  const all = [
    ...ctx.ops.managers().map((m) => ({ json: managerNodeJson(m), engineLabels: {}, labels: {} })),
    ...ctx.ops.listNodes().map((n) => ({ json: nodeJson(n), engineLabels: n.description.engineLabels ?? {}, labels: n.spec.labels })),
  ];
  return all
    .filter(
      ({ json, engineLabels, labels }) =>
        matchesAny(f.get("id"), (v) => json.ID.startsWith(v)) &&
        matchesAny(f.get("name"), (v) => json.Description.Hostname.startsWith(v)) &&
        matchesAny(f.get("role"), (v) => v === json.Spec.Role) &&
        matchesAny(f.get("membership"), (v) => v === "accepted") &&
        matchesLabels(labels, f.get("node.label")) &&
        matchesLabels(engineLabels, f.get("label")),
    )
    .map((x) => x.json);
}

function inspect(ctx: Ctx) {
  const found = resolve(ctx, ctx.params.id!);
  return "manager" in found ? managerNodeJson(found.manager) : nodeJson(found.node);
}

/** ?version=N: the Version.Index the caller read; required, as Docker requires it. */
export function versionParam(ctx: Ctx): number {
  const raw = ctx.query.get("version");
  if (raw === null || !/^\d+$/.test(raw)) {
    throw invalid(`invalid version '${raw ?? ""}': give the object's Version.Index you read (?version=N)`);
  }
  return Number(raw);
}

async function update(ctx: Ctx) {
  const version = versionParam(ctx);
  const found = resolve(ctx, ctx.params.id!);
  if ("manager" in found) throw managerIsFixed(found.manager);
  const spec = nodeSpecFromDocker(await ctx.body());
  await ctx.ops.updateNode(found.node.id, version, spec);
  return undefined;
}

async function remove(ctx: Ctx) {
  const force = ["1", "true"].includes(ctx.query.get("force") ?? "");
  const found = resolve(ctx, ctx.params.id!);
  if ("manager" in found) throw managerIsFixed(found.manager);
  await ctx.ops.removeNode(found.node.id, force);
  sendNoContent(ctx.res);
  return undefined;
}

export const nodeRoutes: Route[] = [
  { method: "GET", path: "/nodes", op: "ListNodes", handle: list },
  { method: "GET", path: "/nodes/{id}", op: "InspectNode", handle: inspect },
  { method: "POST", path: "/nodes/{id}/update", op: "UpdateNode", handle: update },
  { method: "DELETE", path: "/nodes/{id}", op: "RemoveNode", handle: remove },
];
