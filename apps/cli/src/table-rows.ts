// What `ls` and `ps` show for people: wire objects → table cells. Pure.

import type { wire } from "@vipmesh/api";
import { taskName } from "@vipmesh/core";
import { isGlobalMode } from "@vipmesh/engine-api";
import { shortId, stateSince, titleCase } from "./table.ts";

type PortConfig = NonNullable<wire.Service["endpoint"]>["ports"][number];

export const SERVICE_HEADERS = ["ID", "NAME", "MODE", "REPLICAS", "PORTS"] as const;
export const TASK_HEADERS = ["ID", "NAME", "SERVICE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR"] as const;
export const NETWORK_HEADERS = ["ID", "NAME", "DRIVER", "SUBNET"] as const;
export const NODE_HEADERS = ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ADDRESS", "DATAPLANE"] as const;

/** Docker's PORTS cell: `*:30000->80/tcp` (ingress) or `:8080->80/tcp` (host mode). */
export const formatPorts = (ports: readonly PortConfig[]): string =>
  ports
    .map((p) => `${p.publishMode === "host" ? "" : "*"}:${p.publishedPort}->${p.targetPort}/${p.protocol}`)
    .join(", ");

const isWanted = (t: wire.Task) => t.desiredState === "running";

export function serviceRows(services: readonly wire.Service[], tasks: readonly wire.Task[]): string[][] {
  return [...services]
    .sort((a, b) => (a.spec?.annotations?.name ?? "").localeCompare(b.spec?.annotations?.name ?? ""))
    .map((s) => {
      const own = tasks.filter((t) => t.serviceId === s.id && isWanted(t));
      const running = own.filter((t) => t.status?.state === "running").length;
      const global = isGlobalMode(s.spec);
      const desired = global ? own.length : (s.spec?.replicated?.replicas ?? 0);
      return [
        shortId(s.id),
        s.spec?.annotations?.name ?? "",
        global ? "global" : "replicated",
        `${running}/${desired}`,
        formatPorts(s.endpoint?.ports ?? []),
      ];
    });
}

/**
 * Like `docker service ps`: one group per slot (per node for global services),
 * newest task first, older ones marked ` \_ `.
 */
export function taskRows(
  tasks: readonly wire.Task[],
  hostnames: ReadonlyMap<string, string>,
  now: Date,
): string[][] {
  const sorted = [...tasks].sort(
    (a, b) =>
      a.serviceName.localeCompare(b.serviceName) ||
      a.slot - b.slot ||
      a.nodeId.localeCompare(b.nodeId) ||
      b.createdAt.localeCompare(a.createdAt),
  );
  return sorted.map((t, i) => {
    const previous = sorted[i - 1];
    const isHistory =
      previous !== undefined && previous.serviceId === t.serviceId && taskName(previous) === taskName(t);
    return [
      shortId(t.id),
      isHistory ? ` \\_ ${taskName(t)}` : taskName(t),
      t.serviceName,
      t.nodeId ? (hostnames.get(t.nodeId) ?? shortId(t.nodeId)) : "",
      titleCase(t.desiredState),
      currentState(t, now),
      t.status?.err ?? "",
    ];
  });
}

/**
 * Docker's CURRENT STATE: the state and since when; a task preparing (its
 * image being pulled) shows what it is at, as its message says it.
 */
function currentState(t: wire.Task, now: Date): string {
  const state = t.status?.state ?? "";
  const since = stateSince(state, t.status?.timestamp ?? "", now);
  const message = t.status?.message ?? "";
  return state === "preparing" && message && message !== state ? `${since}: ${message}` : since;
}

export function networkRows(networks: readonly wire.Network[]): string[][] {
  return [...networks]
    .sort((a, b) => (a.spec?.name ?? "").localeCompare(b.spec?.name ?? ""))
    .map((n) => [shortId(n.id), n.spec?.name ?? "", n.spec?.driver || "overlay", n.ipam?.subnet ?? ""]);
}

export function nodeRows(nodes: readonly wire.Node[]): string[][] {
  return [...nodes]
    .sort((a, b) => (a.description?.hostname ?? "").localeCompare(b.description?.hostname ?? ""))
    .map((n) => [
      shortId(n.id),
      n.description?.hostname ?? "",
      titleCase(n.status?.state ?? ""),
      titleCase(n.spec?.availability ?? ""),
      "",
      n.status?.addr ?? "",
      n.description?.dataplane || "nftables",
    ]);
}

/** Managers as docker's rows: Ready while reachable, MANAGER STATUS Leader, Reachable or Unreachable; they balance no VIPs. */
export function managerRows(managers: readonly wire.ManagerInfo[]): string[][] {
  return [...managers]
    .sort((a, b) => a.hostname.localeCompare(b.hostname))
    .map((m) => [
      shortId(m.id),
      m.hostname,
      m.reachable ? "Ready" : "Unknown",
      "Active",
      m.leader ? "Leader" : m.reachable ? "Reachable" : "Unreachable",
      m.addr,
      "",
    ]);
}
