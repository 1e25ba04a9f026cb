// /networks: the cluster's overlays (swarm scope, driver overlay).

import type { Network } from "@vipmesh/core";
import { matchesAny, matchesLabels, parseFilters } from "../filters.ts";
import { type Ctx, type Route, sendJson, sendNoContent } from "../http.ts";
import { networkJson, networkServicesJson, networkSpecFromDocker } from "../json/network.ts";

/** Docker's network filters; `dangling` is taken and ignored (Docker's prune asks it). */
const NETWORK_FILTERS = new Set(["name", "id", "label", "driver", "scope", "type", "dangling"]);

/** Docker's network filters: name (contained), id (prefix), label, driver, scope, type (every vipmesh network is custom). */
function matches(n: Network, f: Map<string, string[]>): boolean {
  return (
    matchesAny(f.get("name"), (v) => n.spec.name.includes(v)) &&
    matchesAny(f.get("id"), (v) => n.id.startsWith(v)) &&
    matchesLabels(n.spec.labels, f.get("label")) &&
    matchesAny(f.get("driver"), (v) => v === n.spec.driver) &&
    matchesAny(f.get("scope"), (v) => v === "swarm") &&
    matchesAny(f.get("type"), (v) => v === "custom")
  );
}

function list(ctx: Ctx) {
  const f = parseFilters(ctx.query, NETWORK_FILTERS);
  return ctx.ops
    .listNetworks()
    .filter((n) => matches(n, f))
    .map(networkJson);
}

function inspect(ctx: Ctx) {
  const n = ctx.ops.inspectNetwork(ctx.params.id!);
  const verbose = ["1", "true"].includes(ctx.query.get("verbose") ?? "");
  if (!verbose) return networkJson(n);
  return { ...networkJson(n), Services: networkServicesJson(n, ctx.ops.listServices(), ctx.ops.listTasks(), ctx.ops.listNodes()) };
}

async function create(ctx: Ctx) {
  const n = await ctx.ops.createNetwork(networkSpecFromDocker(await ctx.body()));
  sendJson(ctx.res, 201, { Id: n.id, Warning: "" });
  return undefined;
}

async function remove(ctx: Ctx) {
  await ctx.ops.removeNetwork(ctx.params.id!);
  sendNoContent(ctx.res);
  return undefined;
}

export const networkRoutes: Route[] = [
  { method: "GET", path: "/networks", op: "ListNetworks", handle: list },
  { method: "POST", path: "/networks/create", op: "CreateNetwork", handle: create },
  { method: "GET", path: "/networks/{id}", op: "InspectNetwork", handle: inspect },
  { method: "DELETE", path: "/networks/{id}", op: "RemoveNetwork", handle: remove },
];
