// Placement: which node gets a task. Spread, as swarm does: among the nodes
// that may run the task, the one with the fewest tasks of this service, then
// the fewest tasks overall, then by hostname so that placement is repeatable.

import { matchesConstraints } from "./constraints.ts";
import type { Node, TaskSpec } from "./types.ts";

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
