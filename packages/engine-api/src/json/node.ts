// Nodes in Docker's JSON (docker node ls/inspect), and a node update's body
// back to vipmesh's NodeSpec. Managers are nodes too: drained (they run no
// tasks), reachable or not, one the leader, not in the store (ops.managers()). Pure.

import { invalid, type Node, type NodeSpec, type Resources } from "@vipmesh/core";
import type { Loose } from "./task.ts";
import type { ManagerNode } from "../ops.ts";
import { VIPMESH_VERSION } from "../version.ts";
import { ARCHITECTURE } from "./platform.ts";

/** An agent's node. Agents do not report their platform: they run the manager's (Architecture), Linux. */
export function nodeJson(n: Loose<Node>) {
  return {
    ID: n.id ?? "",
    Version: { Index: n.version ?? 0 },
    CreatedAt: n.createdAt ?? "",
    UpdatedAt: n.updatedAt ?? "",
    Spec: { Labels: n.spec?.labels ?? {}, Role: "worker", Availability: n.spec?.availability ?? "", Membership: "accepted" },
    Description: {
      Hostname: n.description?.hostname ?? "",
      Platform: { Architecture: ARCHITECTURE, OS: "linux" },
      // what the node offers reservations (docker service create --reserve-*); a resource it did not say is left out, as Docker's omitempty
      Resources: resourcesJson(n.description?.resources),
      // the node's own labels (engine.labels.K), apart from the admin's Spec.Labels (node.labels.K);
      // its task runtimes as Plugins of Type "Runtime", which `docker node inspect --pretty` lists under Plugins
      Engine: {
        EngineVersion: VIPMESH_VERSION,
        Labels: n.description?.engineLabels ?? {},
        Plugins: runtimesOf(n).map((r) => ({ Type: "Runtime", Name: r })),
      },
      // vipmesh's own: which dataplane balances its VIPs, and which runtimes run its tasks ("process", "container": containerd)
      Dataplane: n.description?.dataplane || "nftables",
      Runtimes: runtimesOf(n),
    },
    Status: { State: n.status?.state ?? "", Message: n.status?.message ?? "", Addr: n.status?.addr ?? "" },
  };
}

/** A node's runtimes; none said (a node stored before agents said): process only, as placement reads it. */
const runtimesOf = (n: Loose<Node>): string[] => (n.description?.runtimes?.length ? [...n.description.runtimes] : ["process"]);

/** Docker's Resources: NanoCPUs and MemoryBytes, each only when set. */
export function resourcesJson(r: Loose<Resources> | null | undefined): { NanoCPUs?: number; MemoryBytes?: number } {
  return { ...(r?.nanoCpus ? { NanoCPUs: Number(r.nanoCpus) } : {}), ...(r?.memoryBytes ? { MemoryBytes: Number(r.memoryBytes) } : {}) };
}

/** A manager as Docker's: drained, so `docker node ls` shows it Drain, and Leader, Reachable or Unreachable. */
export function managerNodeJson(m: Pick<ManagerNode, "id" | "hostname" | "addr" | "createdAt" | "reachable" | "leader">) {
  const ip = m.addr.replace(/:\d+$/, "");
  return {
    ID: m.id,
    Version: { Index: 1 },
    CreatedAt: m.createdAt,
    UpdatedAt: m.createdAt,
    Spec: { Labels: {}, Role: "manager", Availability: "drain", Membership: "accepted" },
    Description: {
      Hostname: m.hostname,
      Platform: { Architecture: ARCHITECTURE, OS: "linux" },
      Resources: {},
      Engine: { EngineVersion: VIPMESH_VERSION, Labels: {}, Plugins: [] },
    },
    Status: { State: m.reachable ? "ready" : "unknown", Message: "", Addr: ip },
    // Docker leaves Leader out but for the leader
    ManagerStatus: { ...(m.leader ? { Leader: true } : {}), Reachability: m.reachable ? "reachable" : "unreachable", Addr: m.addr },
  };
}

/** Docker's NodeSpec (`docker node update` sends the whole spec it read, changed) → vipmesh's, for a worker. */
export function nodeSpecFromDocker(body: unknown): Partial<NodeSpec> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalid("the node spec must be a JSON object");
  const { Labels, Role, Availability } = body as Record<string, unknown>;
  if (Role !== undefined && Role !== "" && Role !== "worker") {
    throw invalid(`cannot make a node a ${String(Role)}: promote/demote is not supported (a manager is a vipmesh manager process of its own, started with the manager token)`);
  }
  if (Availability === "pause") {
    throw invalid("vipmesh has no pause availability: use drain (its tasks move to other nodes) or active");
  }
  if (Availability !== undefined && typeof Availability !== "string") throw invalid("Availability must be a string: active or drain");
  if (Labels !== undefined && Labels !== null && (typeof Labels !== "object" || Array.isArray(Labels))) throw invalid("Labels must be an object of strings");
  return {
    ...(Availability ? { availability: Availability as NodeSpec["availability"] } : {}),
    labels: (Labels ?? {}) as Record<string, string>,
  };
}
