// Placement: which node gets a task. Spread, as swarm does: among the nodes
// that may run the task, the one with the fewest tasks of this service, then
// the fewest tasks overall, then by hostname so that placement is repeatable.

import { matchesConstraints } from "./constraints.ts";
import { isNodeTask } from "./network-view-derivation.ts";
import type { Node, PortConfig, Task, TaskSpec } from "./types.ts";

/** Nodes that may receive new tasks of this spec. */
export function eligibleNodes(nodes: Iterable<Node>, spec: TaskSpec): Node[] {
  const out: Node[] = [];
  for (const n of nodes) {
    if (n.status.state !== "ready" || n.spec.availability !== "active") continue;
    if (!matchesConstraints(n, spec.placement.constraints)) continue;
    out.push(n);
  }
  return out;
}

/** "tcp/8080": one host-mode port of a node. */
const hostPortKey = (p: PortConfig) => `${p.protocol}/${p.publishedPort}`;

/** The host-mode ports that placed, unfinished tasks hold, per node ID (a task told to stop holds its own until it has). */
export function hostPortsInUse(tasks: Iterable<Task>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const t of tasks) {
    if (t.hostPorts?.length && isNodeTask(t, t.nodeId)) useHostPorts(out, t.nodeId, t.hostPorts);
  }
  return out;
}

/** Of `candidates`, those where none of `ports` is in use: a host-mode port opens once per node (as swarm). */
export const withHostPortsFree = (candidates: readonly Node[], ports: readonly PortConfig[], inUse: ReadonlyMap<string, ReadonlySet<string>>): Node[] =>
  candidates.filter((n) => !ports.some((p) => inUse.get(n.id)?.has(hostPortKey(p))));

/** Records a placed task's host-mode ports. */
export function useHostPorts(inUse: Map<string, Set<string>>, nodeId: string, ports: readonly PortConfig[]): void {
  const used = inUse.get(nodeId) ?? new Set<string>();
  for (const p of ports) used.add(hostPortKey(p));
  inUse.set(nodeId, used);
}

export interface PlacementLoad {
  /** Running-or-starting tasks of the service being placed, per node ID. */
  serviceTasks: Map<string, number>;
  /** All such tasks, per node ID. */
  allTasks: Map<string, number>;
}

export function pickNode(candidates: readonly Node[], load: PlacementLoad): Node | undefined {
  let best: Node | undefined;
  let bestKey: [number, number, string] | undefined;
  for (const n of candidates) {
    const key: [number, number, string] = [
      load.serviceTasks.get(n.id) ?? 0,
      load.allTasks.get(n.id) ?? 0,
      n.description.hostname,
    ];
    if (!bestKey || compare(key, bestKey) < 0) {
      best = n;
      bestKey = key;
    }
  }
  return best;
}

function compare(a: [number, number, string], b: [number, number, string]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2].localeCompare(b[2]);
}

/** Why no node fits, for a pending task's message. */
export function noNodeReason(nodes: readonly Node[]): string {
  const ready = nodes.filter((n) => n.status.state === "ready");
  if (nodes.length === 0) return "no suitable node (no node has joined the cluster)";
  if (ready.length === 0) return `no suitable node (0 of ${nodes.length} nodes ready)`;
  const active = ready.filter((n) => n.spec.availability === "active");
  if (active.length === 0) return `no suitable node (all ${ready.length} ready nodes are drained)`;
  return `no suitable node (scheduling constraints not satisfied on ${active.length} nodes)`;
}

/** Why a task that fits `fitting` nodes otherwise has none: its host-mode ports are taken on each. */
export const hostPortReason = (ports: readonly PortConfig[], fitting: number): string =>
  `no suitable node (host-mode port${ports.length > 1 ? "s" : ""} ${ports.map((p) => `${p.publishedPort}/${p.protocol}`).join(", ")} already in use on ` +
  `${fitting === 1 ? "the 1 node" : `all ${fitting} nodes`} the task may run on)`;
